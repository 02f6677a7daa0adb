//! The Path a REGISTER came with (RFC 3327): the proxies between the
//! device and the registrar that must stay on the way of every request to
//! the device. With Tally nodes behind Kamailio, `add_path` makes Kamailio
//! one of them, so a call that lands on any node reaches the phone through
//! Kamailio (which knows the phone's NAT address and connection), not
//! straight from a node the phone never talked to.
//!
//! # Decisions
//!
//! - Each element is kept as `<uri>`: the URI is what routes (RFC 3261
//!   §16.12 loose routing reads only the URI and its `lr`); header
//!   parameters after `>` carry nothing a Route needs.
//! - Order as received, topmost first: the proxy nearest the registrar
//!   first, which is the order of the Route set towards the device
//!   (RFC 3327 §5.3: "the Path header field values … are used as a
//!   preloaded Route set").
//! - A Path that does not parse refuses the REGISTER (400): a binding the
//!   PBX could not route back through would be a phone that never rings.
//! - Not done: echoing Path in the 200 (RFC 3327 §5.3, for a UA that lists
//!   `path` in Supported); proxies do not need it.

use sip::uri::Uri;
use sip::{HeaderName, Message};

/// The REGISTER's Path values, each as `<uri>`; `Err` with what is wrong.
pub(super) fn route_set(req: &Message) -> Result<Vec<String>, &'static str> {
    req.name_addrs(HeaderName::Path)
        .map(|element| match element {
            Ok(addr) if matches!(addr.uri, Uri::Sip(_)) => Ok(format!("<{}>", addr.uri)),
            Ok(_) => Err("Path must be sip: or sips: URIs"),
            Err(_) => Err("invalid Path"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(path_lines: &[&str]) -> Message {
        let mut text = String::from(
            "REGISTER sip:t1.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKkam;rport\r\n\
             Via: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bKphone\r\n\
             From: <sip:101@t1.example>;tag=a\r\n\
             To: <sip:101@t1.example>\r\n\
             Call-ID: reg-1\r\n\
             CSeq: 1 REGISTER\r\n\
             Contact: <sip:101@10.0.0.7:5062>\r\n",
        );
        for line in path_lines {
            text.push_str(&format!("Path: {line}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(text.into_bytes()).expect("a REGISTER")
    }

    #[test]
    fn no_path_is_an_empty_route_set() {
        assert_eq!(route_set(&register(&[])), Ok(vec![]));
    }

    #[test]
    fn kamailio_add_path_received_is_kept_as_one_route() {
        let req = register(&["<sip:127.0.0.1:5070;lr;received=sip:10.0.0.7:5062>"]);
        assert_eq!(
            route_set(&req),
            Ok(vec![
                "<sip:127.0.0.1:5070;lr;received=sip:10.0.0.7:5062>".to_owned()
            ])
        );
    }

    #[test]
    fn several_proxies_keep_their_order_across_lines_and_commas() {
        let req = register(&[
            "<sip:edge2.example;lr>, \"outer\" <sip:edge1.example;lr>;x=1",
            "<sips:sbc.example:5061;lr>",
        ]);
        assert_eq!(
            route_set(&req),
            Ok(vec![
                "<sip:edge2.example;lr>".to_owned(),
                "<sip:edge1.example;lr>".to_owned(),
                "<sips:sbc.example:5061;lr>".to_owned(),
            ])
        );
    }

    #[test]
    fn a_path_that_cannot_route_is_refused() {
        assert_eq!(
            route_set(&register(&["<tel:+15551234>"])),
            Err("Path must be sip: or sips: URIs")
        );
        assert_eq!(route_set(&register(&["<sip:a;lr"])), Err("invalid Path"));
    }
}
