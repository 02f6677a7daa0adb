//! The engine's media commands applied (DESIGN.md, "How media is
//! relayed"): the shard hands every [`pbx::Output::Media`] here, and the
//! CDR facts of anchored calls pass through [`MediaCalls::hold`] on their
//! way to the commit task.
//!
//! - **Ports.** [`PoolPorts`] is the [`RelayPorts`] lent to the engine: a
//!   reservation binds two port pairs from the [`PortPool`] at once
//!   (synchronous, no await) and parks them under the session; the
//!   `Open` that follows in the same engine step takes them into a relay
//!   task. Dropping a relay, a parked pair or the runtime gives the ports
//!   back (`PortLease`).
//! - **The CDR waits for the report.** A relayed call's `TargetEnded` and
//!   `SessionEnded` (and anything of the session after the first of them)
//!   are held here; `Stop` spawns a task that stops the relay, takes its
//!   report, writes the `recordings` row, and comes back
//!   ([`MediaEvent::Stopped`]); the held facts then leave with the
//!   answered target's `quality` and the session's `recording` filled in.
//!   Holding lasts the time to flush the WAV and insert one row. A crash
//!   meanwhile loses those facts only: the session's journal is open, and
//!   start-up recovery closes it with a `recovered` CDR, as for any call
//!   in progress.
//! - **Recording errors.** When a recording was wanted and no file can
//!   be linked, the session's `SessionEnded` gets a `recording_error`
//!   (`disk_full`, `unwritable`, `no_audio`, `relay_failed`,
//!   `store_failed`; the engine itself fills in the ones it knows:
//!   `no_ports`, `media_off`). A recording made only in case
//!   ([`RecordingPlan::provisional`]) that no recording user answered is
//!   deleted, with no row and no error: nothing was wanted.
//! - **RTP timeout.** A relay that ends by itself reports here
//!   ([`MediaEvent::TimedOut`]); the shard feeds the engine
//!   `Input::MediaTimeout`, which hangs the call up; its report is kept for
//!   the CDR.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cdr::{
    CallEventKind, Quality, RecordingError, RecordingFailure, SessionId, TargetId, TenantId,
    UnixMillis,
};
use pbx::media::{MediaCommand, RecordingPlan, RelayPorts, Side};
use store::Store;
use tokio::sync::mpsc;

use super::ports::{PortPair, PortPool};
use super::relay::{self, AppCommand, Command, RecordingTarget, RelayHandle, Report, TimedOut};
use crate::clock;
use crate::ids::NodeIds;
use crate::shard::SessionFact;

type Parked = Arc<Mutex<HashMap<SessionId, [PortPair; 2]>>>;

/// The engine's port reservations (see the module doc).
pub struct PoolPorts {
    pool: PortPool,
    parked: Parked,
}

impl RelayPorts for PoolPorts {
    fn reserve(&mut self, session: SessionId) -> Option<[u16; 2]> {
        let pairs = match (self.pool.allocate(), self.pool.allocate()) {
            (Ok(a), Ok(b)) => [a, b],
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(session_id = %session, error = %e, "no RTP ports: the call is not relayed");
                return None;
            }
        };
        let ports = [pairs[0].port(), pairs[1].port()];
        self.parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session, pairs);
        Some(ports)
    }
}

/// Where recordings go and where their rows are written.
#[derive(Clone)]
pub struct Recordings {
    pub dir: PathBuf,
    pub store: Store,
    pub ids: NodeIds,
}

/// What comes back to the shard.
#[derive(Debug)]
pub enum MediaEvent {
    /// The relay of `session` saw no RTP for its timeout and ended.
    TimedOut(SessionId),
    /// The caller of `session` pressed `digit` while the PBX held it.
    Digit { session: SessionId, digit: char },
    /// The relay of `session` was stopped; its held facts may go.
    Stopped {
        session: SessionId,
        report: Option<Box<Report>>,
        recording: Linked,
    },
}

/// The receiving end the shard selects on.
pub struct MediaEvents {
    timeouts: mpsc::UnboundedReceiver<TimedOut<SessionId>>,
    stopped: mpsc::UnboundedReceiver<MediaEvent>,
    digits: mpsc::UnboundedReceiver<MediaEvent>,
}

impl MediaEvents {
    pub async fn next(&mut self) -> Option<(MediaEvent, Option<Report>)> {
        tokio::select! {
            Some(t) = self.timeouts.recv() => Some((MediaEvent::TimedOut(t.key), Some(t.report))),
            Some(e) = self.stopped.recv() => Some((e, None)),
            Some(e) = self.digits.recv() => Some((e, None)),
            else => None,
        }
    }
}

/// A wanted recording's link for the CDR, or why there is none
/// (`Ok(None)`: nothing to link, nothing missed).
type Linked = Result<Option<cdr::Recording>, RecordingError>;

/// One anchored call.
#[derive(Default)]
struct CallMedia {
    tenant: Option<TenantId>,
    handle: Option<RelayHandle>,
    plan: Option<RecordingPlan>,
    answered: Option<TargetId>,
    /// The report of a relay that ended by itself.
    report: Option<Report>,
    holding: bool,
    held: Vec<SessionFact>,
    /// `SessionEnded` is among the held facts.
    ended: bool,
    /// Why the recording cannot be made, found before the relay ended
    /// (its directory, the relay's sockets).
    error: Option<RecordingError>,
    /// The stop task came back.
    stopped: Option<(Option<Report>, Linked)>,
}

/// The relays of the shard's calls (see the module doc).
pub struct MediaCalls {
    pool: PortPool,
    parked: Parked,
    calls: HashMap<SessionId, CallMedia>,
    timeout: Duration,
    recordings: Recordings,
    timeouts: mpsc::UnboundedSender<TimedOut<SessionId>>,
    stopped: mpsc::UnboundedSender<MediaEvent>,
    /// Digits from relays (`player.rs`) and the prompts they play.
    digits: mpsc::UnboundedSender<MediaEvent>,
    prompts: super::prompts::PromptLibrary,
}

impl MediaCalls {
    pub fn new(
        pool: PortPool,
        timeout: Duration,
        recordings: Recordings,
    ) -> (MediaCalls, MediaEvents) {
        let (timeouts, timeouts_rx) = mpsc::unbounded_channel();
        let (stopped, stopped_rx) = mpsc::unbounded_channel();
        let (digits, digits_rx) = mpsc::unbounded_channel();
        (
            MediaCalls {
                pool,
                parked: Arc::default(),
                calls: HashMap::new(),
                timeout,
                recordings,
                timeouts,
                stopped,
                digits,
                prompts: Default::default(),
            },
            MediaEvents {
                timeouts: timeouts_rx,
                stopped: stopped_rx,
                digits: digits_rx,
            },
        )
    }

    /// The engine's end: reservations from the same pool, parked here.
    pub fn ports(&self) -> PoolPorts {
        PoolPorts {
            pool: self.pool.clone(),
            parked: Arc::clone(&self.parked),
        }
    }

    /// Where tenant prompts are found (shared with `/api/prompts`).
    pub fn with_prompts(mut self, prompts: super::prompts::PromptLibrary) -> Self {
        self.prompts = prompts;
        self
    }

    /// Calls whose relay or held facts are not settled yet.
    pub fn pending(&self) -> usize {
        self.calls.len()
    }

    /// Applies one engine command.
    pub fn command(&mut self, session: SessionId, tenant: TenantId, command: MediaCommand) {
        match command {
            MediaCommand::Open { recording, .. } => {
                let pairs = self
                    .parked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&session);
                let Some(pairs) = pairs else {
                    tracing::error!(session_id = %session, "relay opened without reserved ports");
                    return;
                };
                let mut error = None;
                let target = recording.as_ref().and_then(|_| {
                    let dir = self.recordings.dir.join(tenant.to_string());
                    match std::fs::create_dir_all(&dir) {
                        Ok(()) => Some(RecordingTarget {
                            path: dir.join(format!("{session}.wav")),
                        }),
                        Err(e) => {
                            tracing::warn!(session_id = %session, dir = %dir.display(), error = %e, "recording not made: its directory cannot be created");
                            error = Some(RecordingError {
                                reason: RecordingFailure::of_io(&e),
                                detail: format!("{}: {e}", dir.display()),
                            });
                            None
                        }
                    }
                });
                let handle =
                    relay::spawn(session, pairs, self.timeout, target, self.timeouts.clone());
                let call = self.calls.entry(session).or_default();
                call.tenant = Some(tenant);
                match handle {
                    Ok(handle) => call.handle = Some(handle),
                    Err(e) => {
                        tracing::error!(session_id = %session, error = %e, "relay not started");
                        error = Some(RecordingError {
                            reason: RecordingFailure::RelayFailed,
                            detail: e.to_string(),
                        });
                    }
                }
                call.error = recording.as_ref().and(error);
                call.plan = recording;
            }
            MediaCommand::Party(side, party) => self.send(session, Command::Party(side, party)),
            MediaCommand::Answered => self.send(session, Command::Answered),
            MediaCommand::Record => {
                if let Some(plan) = self.calls.get_mut(&session).and_then(|c| c.plan.as_mut()) {
                    plan.provisional = false;
                }
            }
            MediaCommand::Stop => self.stop(session),
            MediaCommand::Play(playback) => {
                let items = playback
                    .prompts
                    .iter()
                    .filter_map(|p| {
                        let audio = self.prompts.get(*p);
                        if audio.is_none() {
                            tracing::warn!(session_id = %session, prompt = ?p, "prompt not loaded: skipped");
                        }
                        audio
                    })
                    .collect();
                let player = super::player::Player::new(items, &playback);
                let digits = self.digits.clone();
                let on_digit = Box::new(move |digit| {
                    let _ = digits.send(MediaEvent::Digit { session, digit });
                });
                self.send(
                    session,
                    Command::App(AppCommand::Play {
                        player,
                        events: playback.events,
                        on_digit,
                    }),
                );
            }
            MediaCommand::Quiet => self.send(session, Command::App(AppCommand::Quiet)),
            MediaCommand::Bridge => self.send(session, Command::App(AppCommand::Bridge)),
        }
    }

    fn send(&self, session: SessionId, command: Command) {
        if let Some(h) = self.calls.get(&session).and_then(|c| c.handle.as_ref()) {
            h.send(command);
        }
    }

    fn stop(&mut self, session: SessionId) {
        let Some(call) = self.calls.get_mut(&session) else {
            return;
        };
        let handle = call.handle.take();
        let known = call.report.take();
        let plan = call.plan.take();
        let tenant = call.tenant;
        let known_error = call.error.take();
        let answered = call.answered.is_some();
        let recordings = self.recordings.clone();
        let back = self.stopped.clone();
        tokio::spawn(async move {
            let report = match (known, handle) {
                (Some(r), _) => Some(r),
                (None, Some(h)) => h.stop().await,
                (None, None) => None,
            };
            if let Some(r) = &report {
                let [a, b] = &r.streams;
                tracing::info!(
                    session_id = %session,
                    end = ?r.end,
                    caller_latched = ?a.latched,
                    callee_latched = ?b.latched,
                    caller_packets = a.packets,
                    callee_packets = b.packets,
                    rejected = a.rejected + b.rejected,
                    "relay stopped"
                );
            }
            let recording = match (known_error, &report, plan, tenant) {
                (Some(e), _, Some(plan), _) => {
                    if plan.provisional {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                }
                (None, Some(r), Some(plan), Some(tenant)) => {
                    save_recording(&recordings, session, tenant, &plan, r, answered).await
                }
                _ => Ok(None),
            };
            let _ = back.send(MediaEvent::Stopped {
                session,
                report: report.map(Box::new),
                recording,
            });
        });
    }

    /// A CDR fact on its way to the commit task: `Some` to send it now,
    /// `None` when it is held until the relay's report (module doc).
    pub fn hold(&mut self, fact: SessionFact) -> Option<SessionFact> {
        let Some(call) = self.calls.get_mut(&fact.session) else {
            return Some(fact);
        };
        match &fact.event.kind {
            CallEventKind::TargetAnswered { target } => call.answered = Some(*target),
            CallEventKind::TargetEnded(_) => call.holding = true,
            CallEventKind::SessionEnded(_) => {
                call.holding = true;
                call.ended = true;
            }
            _ => {}
        }
        if !call.holding {
            return Some(fact);
        }
        call.held.push(fact);
        None
    }

    /// What a [`MediaEvents`] event means; returns the facts that may go
    /// now, and whether the engine must hang the call up (timeout).
    pub fn on_event(&mut self, event: MediaEvent, report: Option<Report>) -> Released {
        match event {
            MediaEvent::Digit { session, digit } => Released {
                facts: Vec::new(),
                hang_up: None,
                digit: Some((session, digit)),
            },
            MediaEvent::TimedOut(session) => {
                if let Some(call) = self.calls.get_mut(&session) {
                    call.handle = None;
                    call.report = report;
                }
                Released {
                    facts: Vec::new(),
                    hang_up: Some(session),
                    digit: None,
                }
            }
            MediaEvent::Stopped {
                session,
                report,
                recording,
            } => {
                if let Some(call) = self.calls.get_mut(&session) {
                    call.stopped = Some((report.map(|r| *r), recording));
                }
                Released {
                    facts: self.release(session),
                    hang_up: None,
                    digit: None,
                }
            }
        }
    }

    /// The held facts of `session` once both its `SessionEnded` and its
    /// report are in, completed.
    fn release(&mut self, session: SessionId) -> Vec<SessionFact> {
        let ready = self
            .calls
            .get(&session)
            .is_some_and(|c| c.ended && c.stopped.is_some());
        if !ready {
            return Vec::new();
        }
        let Some(mut call) = self.calls.remove(&session) else {
            return Vec::new();
        };
        let (report, recording) = call.stopped.take().unwrap_or((None, Ok(None)));
        let (recording, error) = match recording {
            Ok(r) => (r, None),
            Err(e) => (None, Some(e)),
        };
        let quality = report.as_ref().map(quality_of);
        for fact in &mut call.held {
            match &mut fact.event.kind {
                CallEventKind::TargetEnded(end) if Some(end.target) == call.answered => {
                    end.quality = quality.clone();
                }
                CallEventKind::SessionEnded(end) => {
                    end.recording = recording.clone();
                    if error.is_some() {
                        end.recording_error = error.clone();
                    }
                }
                _ => {}
            }
        }
        call.held
    }
}

/// What the shard does after a media event.
pub struct Released {
    pub facts: Vec<SessionFact>,
    pub hang_up: Option<SessionId>,
    /// A digit for the engine (`Input::Digit`).
    pub digit: Option<(SessionId, char)>,
}

/// The target's `quality`: what the relay received from the callee's
/// side. A side that sent nothing has no codec (`""`) and no score (MOS 0).
fn quality_of(report: &Report) -> Quality {
    let s = &report.streams[Side::B as usize];
    Quality {
        codec: s.codec.clone().unwrap_or_default(),
        packets: s.packets,
        lost: s.lost,
        jitter_ms: s.jitter_ms,
        mos: if s.packets == 0 { 0.0 } else { s.mos },
    }
}

/// The `recordings` row of a finished recording, and the CDR's link to it;
/// `Ok(None)` when there is nothing to link and nothing was missed (a
/// recording made in case that nobody who records answered: deleted; an
/// unanswered call with no audio), `Err` with the reason (logged once)
/// when a wanted recording has no file to link.
async fn save_recording(
    r: &Recordings,
    session: SessionId,
    tenant: TenantId,
    plan: &RecordingPlan,
    report: &Report,
    answered: bool,
) -> Linked {
    let Some(rec) = report.recording.as_ref() else {
        return Ok(None);
    };
    if plan.provisional {
        let _ = std::fs::remove_file(&rec.path);
        return Ok(None);
    }
    let size = std::fs::metadata(&rec.path).map(|m| m.len()).unwrap_or(0);
    if size <= 44 {
        // Nothing but a header, or no file: no recording to link. The
        // relay logged its error, once.
        let _ = std::fs::remove_file(&rec.path);
        let error = match &rec.error {
            Some(e) => RecordingError {
                reason: failure_of(e),
                detail: format!("{}: {e}", rec.path.display()),
            },
            None if answered => RecordingError {
                reason: RecordingFailure::NoAudio,
                detail: "the relay wrote no audio".to_owned(),
            },
            None => return Ok(None),
        };
        if rec.error.is_none() {
            tracing::warn!(session_id = %session, "call not recorded: no audio");
        }
        return Err(error);
    }
    let (_, now) = clock::now();
    let id = r.ids.next(UnixMillis(now));
    let duration_ms = (rec.duration_secs * 1000.0).round() as u64;
    let row = store::Recording {
        id,
        tenant_id: tenant,
        session_id: session,
        caller: plan.caller.clone(),
        callee: plan.callee.clone(),
        started_at: UnixMillis(plan.started_ms),
        duration_ms,
        size_bytes: size,
        path: format!("{tenant}/{session}.wav"),
        created_at: UnixMillis(now),
    };
    if let Err(e) = r.store.insert_recording(&row).await {
        tracing::error!(session_id = %session, error = %e, "recording row not written; the file stays");
        return Err(RecordingError {
            reason: RecordingFailure::StoreFailed,
            detail: e.to_string(),
        });
    }
    Ok(Some(cdr::Recording {
        id,
        url: format!("/api/recordings/{id}/download"),
        duration: rec.duration_secs.round() as u64,
    }))
}

/// The failure a relay's recording error text means. The relay reports
/// the `io::Error`'s text; an OS error in it (`(os error 28)`) gives its
/// kind back: ENOSPC and EDQUOT are `disk_full`, anything else
/// `unwritable`.
fn failure_of(error: &str) -> RecordingFailure {
    let code = error
        .rsplit_once("(os error ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .and_then(|n| n.parse::<i32>().ok());
    match code {
        Some(code) => RecordingFailure::of_io(&std::io::Error::from_raw_os_error(code)),
        None => RecordingFailure::Unwritable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_errors_map_to_failures() {
        let full = std::io::Error::from_raw_os_error(28).to_string();
        assert_eq!(failure_of(&full), RecordingFailure::DiskFull);
        let quota = std::io::Error::from_raw_os_error(122).to_string();
        assert_eq!(failure_of(&quota), RecordingFailure::DiskFull);
        let denied = std::io::Error::from_raw_os_error(13).to_string();
        assert_eq!(failure_of(&denied), RecordingFailure::Unwritable);
        assert_eq!(failure_of("wav: too long"), RecordingFailure::Unwritable);
    }
}
