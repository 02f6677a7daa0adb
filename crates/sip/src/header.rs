//! Header field names: the ones Tally reads, with their compact forms
//! (RFC 3261 §7.3.3 and the extensions that define one), matched
//! case-insensitively, and one canonical spelling for what Tally writes.

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal, $lower:literal $(, $compact:literal)? ; )*) => {
        /// A header field name. `Other` covers every name Tally does not read
        /// by type; its spelling stays in the message buffer.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum HeaderName {
            $( $variant, )*
            Other,
        }

        impl HeaderName {
            /// Every named variant (not `Other`).
            pub const ALL: &'static [HeaderName] = &[$( HeaderName::$variant, )*];

            /// Number of variants, `Other` included.
            pub const COUNT: usize = Self::ALL.len() + 1;

            /// The canonical spelling Tally writes.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// Classifies a received name (long or compact form, any case).
            pub fn from_wire(name: &str) -> HeaderName {
                Self::from_wire_bytes(name.as_bytes())
            }

            pub(crate) fn from_wire_bytes(name: &[u8]) -> HeaderName {
                // Fold case with `| 0x20`: exact for letters, identity for
                // digits and '-', and it maps the other token characters to
                // bytes no canonical name contains, so the match stays exact.
                let mut buf = [0u8; MAX_KNOWN_LEN];
                let Some(dst) = buf.get_mut(..name.len()) else {
                    return HeaderName::Other;
                };
                for (d, s) in dst.iter_mut().zip(name) {
                    *d = s | 0x20;
                }
                match &*dst {
                    $( $lower $( | [$compact] )? => HeaderName::$variant, )*
                    _ => HeaderName::Other,
                }
            }
        }
    };
}

// `Message` keeps a 64-bit mask with one bit per variant.
const _: () = assert!(HeaderName::COUNT <= 64);

/// Longer names cannot be known ones.
const MAX_KNOWN_LEN: usize = 24;

header_names! {
    Via => "Via", b"via", b'v';
    From => "From", b"from", b'f';
    To => "To", b"to", b't';
    CallId => "Call-ID", b"call-id", b'i';
    CSeq => "CSeq", b"cseq";
    Contact => "Contact", b"contact", b'm';
    MaxForwards => "Max-Forwards", b"max-forwards";
    ContentLength => "Content-Length", b"content-length", b'l';
    ContentType => "Content-Type", b"content-type", b'c';
    ContentEncoding => "Content-Encoding", b"content-encoding", b'e';
    Route => "Route", b"route";
    RecordRoute => "Record-Route", b"record-route";
    Path => "Path", b"path";
    Expires => "Expires", b"expires";
    MinExpires => "Min-Expires", b"min-expires";
    Authorization => "Authorization", b"authorization";
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization";
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate";
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate";
    ReferTo => "Refer-To", b"refer-to", b'r';
    ReferredBy => "Referred-By", b"referred-by", b'b';
    Replaces => "Replaces", b"replaces";
    Supported => "Supported", b"supported", b'k';
    Require => "Require", b"require";
    ProxyRequire => "Proxy-Require", b"proxy-require";
    Unsupported => "Unsupported", b"unsupported";
    Allow => "Allow", b"allow";
    Accept => "Accept", b"accept";
    PAssertedIdentity => "P-Asserted-Identity", b"p-asserted-identity";
    PPreferredIdentity => "P-Preferred-Identity", b"p-preferred-identity";
    SessionExpires => "Session-Expires", b"session-expires", b'x';
    MinSe => "Min-SE", b"min-se";
    RetryAfter => "Retry-After", b"retry-after";
    Event => "Event", b"event", b'o';
    AllowEvents => "Allow-Events", b"allow-events", b'u';
    SubscriptionState => "Subscription-State", b"subscription-state";
    Subject => "Subject", b"subject", b's';
    Date => "Date", b"date";
    Timestamp => "Timestamp", b"timestamp";
    UserAgent => "User-Agent", b"user-agent";
    Server => "Server", b"server";
    Reason => "Reason", b"reason";
    Privacy => "Privacy", b"privacy";
    Rseq => "RSeq", b"rseq";
    Rack => "RAck", b"rack";
    XSessionId => "X-Session-Id", b"x-session-id";
}

impl HeaderName {
    /// Headers whose value may hold several comma-separated elements
    /// (RFC 3261 §7.3.1). `WWW-Authenticate` and friends are not here: their
    /// commas separate parameters, and several challenges come in several lines.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Path
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::Accept
                | HeaderName::PAssertedIdentity
                | HeaderName::PPreferredIdentity
                | HeaderName::AllowEvents
                | HeaderName::ContentEncoding
        )
    }

    /// Headers of which a well-formed message has at most one.
    pub fn is_single(self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
                | HeaderName::ReferTo
                | HeaderName::Replaces
                | HeaderName::SessionExpires
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderName::Other => f.write_str("extension"),
            h => f.write_str(h.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_classifies_back() {
        for &h in HeaderName::ALL {
            assert_eq!(HeaderName::from_wire(h.as_str()), h);
            assert_eq!(HeaderName::from_wire(&h.as_str().to_uppercase()), h);
        }
        assert_eq!(HeaderName::from_wire(""), HeaderName::Other);
        assert_eq!(HeaderName::from_wire("1"), HeaderName::Other);
        assert_eq!(HeaderName::from_wire("Vias"), HeaderName::Other);
    }

    #[test]
    fn long_compact_and_case() {
        assert_eq!(HeaderName::from_wire("via"), HeaderName::Via);
        assert_eq!(HeaderName::from_wire("V"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_wire("MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_wire("i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_wire("call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_wire("x"), HeaderName::SessionExpires);
        assert_eq!(HeaderName::from_wire("r"), HeaderName::ReferTo);
        assert_eq!(HeaderName::from_wire("q"), HeaderName::Other);
        assert_eq!(HeaderName::from_wire("X-Foo"), HeaderName::Other);
        for (c, h) in [
            ("v", HeaderName::Via),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("b", HeaderName::ReferredBy),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("e", HeaderName::ContentEncoding),
        ] {
            assert_eq!(HeaderName::from_wire(c), h);
            assert_eq!(HeaderName::from_wire(h.as_str()), h);
        }
    }
}
