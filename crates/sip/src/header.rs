//! Header field names: the ones Tally reads, with their compact forms
//! (RFC 3261 §7.3.3 and the extensions that define one), matched
//! case-insensitively, and one canonical spelling for what Tally writes.

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header field name. `Other` covers every name Tally does not read
        /// by type; its spelling stays in the message buffer.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $variant, )*
            Other,
        }

        impl HeaderName {
            /// The canonical spelling Tally writes.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// Classifies a received name (long or compact form, any case).
            pub fn from_wire(name: &str) -> HeaderName {
                if name.len() == 1 {
                    let c = name.as_bytes()[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                    return HeaderName::Other;
                }
                $( if name.len() == $canon.len() && name.eq_ignore_ascii_case($canon) {
                    return HeaderName::$variant;
                } )*
                HeaderName::Other
            }
        }
    };
}

header_names! {
    Via => "Via", b'v';
    From => "From", b'f';
    To => "To", b't';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    Contact => "Contact", b'm';
    MaxForwards => "Max-Forwards";
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    ContentEncoding => "Content-Encoding", b'e';
    Route => "Route";
    RecordRoute => "Record-Route";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    Replaces => "Replaces";
    Supported => "Supported", b'k';
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    Allow => "Allow";
    Accept => "Accept";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    SessionExpires => "Session-Expires", b'x';
    MinSe => "Min-SE";
    RetryAfter => "Retry-After";
    Event => "Event", b'o';
    AllowEvents => "Allow-Events", b'u';
    SubscriptionState => "Subscription-State";
    Subject => "Subject", b's';
    Date => "Date";
    Timestamp => "Timestamp";
    UserAgent => "User-Agent";
    Server => "Server";
    Reason => "Reason";
    Privacy => "Privacy";
    Rseq => "RSeq";
    Rack => "RAck";
    XSessionId => "X-Session-Id";
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

/// Whether `name` is a valid header field name (a token).
pub(crate) fn is_valid_name(name: &str) -> bool {
    crate::text::is_token(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_compact_and_case() {
        assert_eq!(HeaderName::from_wire("via"), HeaderName::Via);
        assert_eq!(HeaderName::from_wire("V"), HeaderName::Via);
        assert_eq!(HeaderName::from_wire("MaX-fOrWaRdS"), HeaderName::MaxForwards);
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
