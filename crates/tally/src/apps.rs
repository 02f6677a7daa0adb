//! IVRs and queues (issue 14) as the engine's directory holds them:
//! loaded with the rest of the directory (`directory::load_directory`),
//! each with its prompts' durations (the engine times its prompts).

use std::collections::HashMap;
use std::time::Duration;

use store::{Store, StoreError};

/// Adds the stored IVRs and queues to `directory`. Rows the engine
/// refuses are logged and skipped.
pub async fn load(store: &Store, directory: &mut pbx::Directory) -> Result<(), StoreError> {
    let durations: HashMap<cdr::Id, u64> = store
        .prompts(None)
        .await?
        .into_iter()
        .map(|p| (p.id, p.duration_ms))
        .collect();
    for ivr in store.all_ivrs().await? {
        if let Err(e) = directory.upsert_ivr(engine_ivr(&ivr, &durations)) {
            tracing::warn!(tenant_id = %ivr.tenant_id, number = %ivr.number, error = %e, "stored IVR not loaded");
        }
    }
    for queue in store.all_queues().await? {
        let Some(engine) = engine_queue(&queue, &durations) else {
            tracing::warn!(tenant_id = %queue.tenant_id, number = %queue.number, strategy = %queue.strategy, "stored queue not loaded: unknown strategy");
            continue;
        };
        if let Err(e) = directory.upsert_queue(engine) {
            tracing::warn!(tenant_id = %queue.tenant_id, number = %queue.number, error = %e, "stored queue not loaded");
        }
    }
    Ok(())
}

/// A stored IVR as the engine's directory holds it; `durations` are the
/// tenant prompts' lengths (ms). A greeting whose prompt is gone plays
/// the built-in menu; menu keys that are not one character are skipped
/// (the API writes none).
pub fn engine_ivr(ivr: &store::Ivr, durations: &HashMap<cdr::Id, u64>) -> pbx::Ivr {
    let destination = |d: &str| match d {
        store::HANG_UP => pbx::IvrDestination::HangUp,
        n => pbx::IvrDestination::Number(n.to_owned()),
    };
    let greeting = ivr
        .greeting_prompt_id
        .and_then(|id| {
            durations.get(&id).map(|ms| pbx::Prompt {
                source: pbx::PromptRef::Tenant(id),
                duration: Duration::from_millis(*ms),
            })
        })
        .unwrap_or(pbx::BuiltinPrompt::Menu.prompt());
    pbx::Ivr {
        tenant_id: ivr.tenant_id,
        number: pbx::Extension::new(ivr.number.clone()),
        name: ivr.name.clone(),
        greeting,
        invalid: pbx::BuiltinPrompt::Invalid.prompt(),
        menu: ivr
            .menu
            .iter()
            .filter_map(|(k, d)| {
                let mut chars = k.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some((c, destination(d))),
                    _ => None,
                }
            })
            .collect(),
        dial_by_extension: ivr.dial_by_extension,
        digit_timeout: Duration::from_secs(u64::from(ivr.digit_timeout_secs)),
        retries: ivr.retries,
        timeout_destination: ivr.timeout_destination.as_deref().map(destination),
    }
}

/// A stored queue as the engine's directory holds it (`None` for a
/// strategy this version does not know).
pub fn engine_queue(q: &store::Queue, durations: &HashMap<cdr::Id, u64>) -> Option<pbx::Queue> {
    let ext = |v: &Vec<String>| v.iter().map(|a| pbx::Extension::new(a.clone())).collect();
    let moh = q
        .moh_prompt_id
        .and_then(|id| {
            durations.get(&id).map(|ms| pbx::Prompt {
                source: pbx::PromptRef::Tenant(id),
                duration: Duration::from_millis(*ms),
            })
        })
        .unwrap_or(pbx::BuiltinPrompt::Moh.prompt());
    Some(pbx::Queue {
        tenant_id: q.tenant_id,
        number: pbx::Extension::new(q.number.clone()),
        name: q.name.clone(),
        strategy: pbx::QueueStrategy::parse(&q.strategy)?,
        agents: ext(&q.agents),
        logged_in: ext(&q.logged_in),
        agent_timeout: Duration::from_secs(u64::from(q.agent_timeout_secs)),
        wrap_up: Duration::from_secs(u64::from(q.wrap_up_secs)),
        max_wait: q.max_wait_secs.map(|s| Duration::from_secs(u64::from(s))),
        max_length: q.max_length,
        overflow: q.overflow.as_deref().map(|d| match d {
            store::HANG_UP => pbx::IvrDestination::HangUp,
            n => pbx::IvrDestination::Number(n.to_owned()),
        }),
        moh,
        announce_position: (q.announce_position_secs > 0)
            .then(|| Duration::from_secs(u64::from(q.announce_position_secs))),
        callback_attempts: (q.callback_attempts > 0).then_some(q.callback_attempts),
    })
}

/// Commits the agents' feature-code logins and logouts (the engine
/// changed its own directory already) until the queue closes: each queue
/// is written as `POST /api/queues/{id}/login` does, which bumps the
/// directory version so other nodes load it. A queue gone meanwhile is
/// logged and skipped.
pub async fn persist_agent_logins(
    mut changes: tokio::sync::mpsc::UnboundedReceiver<pbx::AgentLogin>,
    store: Store,
) {
    while let Some(change) = changes.recv().await {
        for queue in &change.queues {
            let result = store
                .set_queue_agent_by_number(
                    change.tenant,
                    queue,
                    &change.extension,
                    change.on,
                    crate::clock::unix_millis(),
                )
                .await;
            match result {
                Ok(store::AgentLogin::Done(_)) => tracing::info!(
                    tenant_id = %change.tenant,
                    queue = %queue,
                    extension = %change.extension,
                    on = change.on,
                    "queue agent logged {} by feature code",
                    if change.on { "in" } else { "out" }
                ),
                Ok(other) => tracing::warn!(
                    tenant_id = %change.tenant,
                    queue = %queue,
                    extension = %change.extension,
                    outcome = ?other,
                    "queue agent feature code not persisted"
                ),
                Err(e) => tracing::warn!(
                    tenant_id = %change.tenant,
                    queue = %queue,
                    extension = %change.extension,
                    error = %e,
                    "could not persist a queue agent's feature code"
                ),
            }
        }
    }
}
