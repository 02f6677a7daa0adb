//! `tally serve --demo`: a tenant `demo.tally.local` with extensions
//! 101–105, so a newcomer can point two softphones (or SIPp) at the PBX
//! and call. Idempotent: a later start with `--demo` reuses what exists;
//! it prints the SIP passwords it creates, and cannot print older ones
//! again (the store keeps only their digest hashes).

use store::Store;

use crate::provision::{NewTenant, Provisioner, UserFields};
use crate::random;

pub const DOMAIN: &str = "demo.tally.local";
pub const EXTENSIONS: [&str; 5] = ["101", "102", "103", "104", "105"];
const PASSWORD_LENGTH: usize = 12;

pub struct Demo {
    pub tenant: store::Tenant,
    /// Each user, with its SIP password when this start created it.
    pub users: Vec<(store::User, Option<String>)>,
}

pub async fn provision(provisioner: &Provisioner, store: &Store) -> anyhow::Result<Demo> {
    let tenant = match store.tenant_by_sip_domain(DOMAIN).await? {
        Some(t) => t,
        None => {
            provisioner
                .create_tenant(NewTenant::new("Demo", DOMAIN))
                .await?
        }
    };
    let mut users = Vec::new();
    for extension in EXTENSIONS {
        let user = match store.user_by_extension(tenant.id, extension).await? {
            Some(u) => (u, None),
            None => {
                let password = random::password(PASSWORD_LENGTH)?;
                let new = UserFields {
                    display_name: format!("Demo {extension}"),
                    ..UserFields::new(extension.to_owned(), password.clone())
                };
                (
                    provisioner.create_user(tenant.id, new).await?,
                    Some(password),
                )
            }
        };
        users.push(user);
    }
    Ok(Demo { tenant, users })
}

impl Demo {
    /// The credentials, for stdout.
    pub fn credentials(&self, sip_server: &str) -> String {
        let mut out = format!(
            "Demo tenant {} (id {}): register phones to {sip_server} (UDP or TCP), \
             SIP domain/realm {}\n  {:<10} {:<14} {}\n",
            self.tenant.name,
            self.tenant.id,
            self.tenant.sip_domain,
            "extension",
            "password",
            "display name"
        );
        for (u, password) in &self.users {
            let password = password.as_deref().unwrap_or("(set before)");
            out.push_str(&format!(
                "  {:<10} {:<14} {}\n",
                u.extension, password, u.display_name
            ));
        }
        out
    }
}
