//! The process's open-file limit, raised at start-up (security review,
//! finding 10). Every SIP TCP connection, HTTP connection, WebSocket,
//! database connection and outgoing webhook holds a descriptor; the soft
//! limit many systems start a service with (1024) would let a few hundred
//! idle connections refuse everything else. The soft limit is raised to
//! the hard limit (what an unprivileged process may take), and the value
//! is logged so an operator can see what the connection caps sit under.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit
/// in force afterwards (`None` if it cannot be read).
pub fn raise() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let soft = super::raise().expect("readable");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(soft, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
