//! Dialog flows (RFC 3261 §12–15, RFC 3311, RFC 3515, RFC 3891) run as plain
//! function calls: Tally's dialog on one side, and where the flow needs a
//! peer, the peer's own `Dialog` on the other (quinn-proto style), so that
//! every request one side writes is one the other side accepts.

use bytes::Bytes;
use sip::builder::ViaValue;
use sip::dialog::{
    Dialog, DialogError, DialogId, DialogState, Local, Role, refer_to_with_replaces,
};
use sip::header::HeaderName;
use sip::headers::ReferTo;
use sip::validate::check_request;
use sip::{Message, Method, RequestBuilder, ResponseBuilder};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const TALLY_CONTACT: &str = "<sip:pbx@192.0.2.10:5060>";

/// Tally's side of an outgoing request, with the branch of a new transaction.
fn tally(branch: &str) -> Local<'_> {
    Local {
        via: ViaValue {
            transport: "UDP",
            sent_by: "192.0.2.10:5060",
            branch,
        },
        contact: TALLY_CONTACT,
    }
}

/// The far end's side of an outgoing request.
fn phone(branch: &str) -> Local<'_> {
    Local {
        via: ViaValue {
            transport: "UDP",
            sent_by: "192.0.2.20:5060",
            branch,
        },
        contact: "<sip:101@192.0.2.20:5060>",
    }
}

/// Builds what a dialog wrote and checks it the way a receiving UAS would:
/// it re-parses from its bytes and passes `check_request`.
fn sent(b: RequestBuilder) -> Message {
    let m = b.build().expect("built");
    let m = Message::parse(m.as_bytes().clone()).expect("re-parses");
    check_request(&m).unwrap_or_else(|e| panic!("{}: {e}", m.summary()));
    m
}

/// The INVITE Tally sends to Bob (the B-leg of a call).
fn invite_to_bob() -> Message {
    sent(
        RequestBuilder::new(Method::Invite, "sip:bob@biloxi.example.com")
            .header(
                HeaderName::Via,
                ViaValue {
                    transport: "UDP",
                    sent_by: "192.0.2.10:5060",
                    branch: "z9hG4bKinv1",
                },
            )
            .header(HeaderName::MaxForwards, 70)
            .header(
                HeaderName::From,
                "\"Alice\" <sip:alice@atlanta.example.com>;tag=tly1",
            )
            .header(HeaderName::To, "<sip:bob@biloxi.example.com>")
            .header(HeaderName::CallId, "b2b-leg-1@192.0.2.10")
            .header(HeaderName::CSeq, "101 INVITE")
            .header(HeaderName::Contact, TALLY_CONTACT)
            .body("application/sdp", SDP),
    )
}

/// A response to `req` as it arrives after the proxies: with `tag`, Contact
/// and Record-Route (topmost first, as on the wire).
fn answer(
    req: &Message,
    code: u16,
    tag: &str,
    contact: Option<&str>,
    record_route: &[&str],
) -> Message {
    let mut b = ResponseBuilder::reply(req, code).to_tag(tag);
    for rr in record_route {
        b = b.header(HeaderName::RecordRoute, rr);
    }
    if let Some(c) = contact {
        b = b.header(HeaderName::Contact, c);
    }
    let m = b.build().expect("response builds");
    sip::validate::check_response(&m).expect("valid response");
    m
}

fn routes(m: &Message) -> Vec<&str> {
    m.header_lines(HeaderName::Route).collect()
}

const RR_TO_BOB: [&str; 2] = [
    "<sip:p2.biloxi.example.com;lr>",
    "<sip:p1.atlanta.example.com;lr>",
];

#[test]
fn uac_early_confirmed_ack_reinvite_bye() {
    let invite = invite_to_bob();
    let ringing = answer(
        &invite,
        180,
        "bob1",
        Some("<sip:bob@192.0.2.20>"),
        &RR_TO_BOB,
    );
    let mut d = Dialog::uac(&invite, &ringing).unwrap();
    assert_eq!(d.role(), Role::Uac);
    assert_eq!(d.state(), DialogState::Early);
    assert_eq!(
        d.id(),
        &DialogId {
            call_id: "b2b-leg-1@192.0.2.10".into(),
            local_tag: "tly1".into(),
            remote_tag: "bob1".into(),
        }
    );
    assert_eq!(DialogId::of_received(&ringing).unwrap(), *d.id());
    // §12.1.2: the response's Record-Route, reversed.
    assert_eq!(
        d.route_set(),
        [
            "sip:p1.atlanta.example.com;lr",
            "sip:p2.biloxi.example.com;lr"
        ]
    );
    assert_eq!(d.remote_target(), "sip:bob@192.0.2.20");
    assert_eq!(d.local_seq(), Some(101));
    assert_eq!(d.remote_seq(), None);
    assert_eq!(
        d.local_uri(),
        "\"Alice\" <sip:alice@atlanta.example.com>;tag=tly1"
    );
    assert_eq!(d.remote_uri(), "<sip:bob@biloxi.example.com>;tag=bob1");
    assert!(!d.secure());

    // The 2xx confirms the dialog and brings a new target.
    let ok = answer(
        &invite,
        200,
        "bob1",
        Some("<sip:bob@192.0.2.21:5062>"),
        &RR_TO_BOB,
    );
    d.receive_response(&ok).unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.remote_target(), "sip:bob@192.0.2.21:5062");

    // §13.2.2.4: the ACK reuses the INVITE's number and takes no new one.
    let ack = sent(d.ack(&ok, &tally("z9hG4bKack1")).unwrap());
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri_str(), Some("sip:bob@192.0.2.21:5062"));
    assert_eq!(
        routes(&ack),
        [
            "<sip:p1.atlanta.example.com;lr>",
            "<sip:p2.biloxi.example.com;lr>"
        ]
    );
    assert_eq!(ack.cseq().unwrap().to_string(), "101 ACK");
    assert_eq!(ack.via().unwrap().branch(), Some("z9hG4bKack1"));
    assert_eq!(ack.max_forwards().unwrap(), Some(70));
    assert_eq!(ack.from().unwrap().tag(), Some("tly1"));
    assert_eq!(ack.to().unwrap().tag(), Some("bob1"));
    assert_eq!(ack.call_id().unwrap(), "b2b-leg-1@192.0.2.10");
    assert!(ack.header(HeaderName::Contact).is_none());
    assert_eq!(d.local_seq(), Some(101));

    // A re-INVITE (hold, say) with SDP: next number, Contact, body.
    let reinvite = sent(
        d.reinvite(
            &tally("z9hG4bKre1"),
            Some(Bytes::from_static(SDP.as_bytes())),
        )
        .unwrap(),
    );
    assert_eq!(reinvite.cseq().unwrap().to_string(), "102 INVITE");
    assert_eq!(reinvite.request_uri_str(), Some("sip:bob@192.0.2.21:5062"));
    assert_eq!(reinvite.header(HeaderName::Contact), Some(TALLY_CONTACT));
    assert_eq!(reinvite.content_type(), Some("application/sdp"));
    assert_eq!(reinvite.body(), SDP.as_bytes());
    assert_eq!(routes(&reinvite).len(), 2);

    // Its 2xx moves Bob elsewhere: a target refresh (§12.2.1.2).
    let ok2 = answer(
        &reinvite,
        200,
        "bob1",
        Some("<sip:bob@198.51.100.7:5070;transport=tcp>"),
        &[],
    );
    d.receive_response(&ok2).unwrap();
    assert_eq!(d.remote_target(), "sip:bob@198.51.100.7:5070;transport=tcp");
    assert_eq!(
        d.route_set().len(),
        2,
        "the route set is fixed once confirmed"
    );
    let ack2 = sent(d.ack(&ok2, &tally("z9hG4bKack2")).unwrap());
    assert_eq!(ack2.cseq().unwrap().to_string(), "102 ACK");
    assert_eq!(
        ack2.request_uri_str(),
        Some("sip:bob@198.51.100.7:5070;transport=tcp")
    );

    // BYE: the next number; the session is over once it is written.
    let bye = sent(d.bye(&tally("z9hG4bKbye1")).unwrap());
    assert_eq!(bye.cseq().unwrap().to_string(), "103 BYE");
    assert_eq!(
        bye.request_uri_str(),
        Some("sip:bob@198.51.100.7:5070;transport=tcp")
    );
    assert!(bye.header(HeaderName::Contact).is_none());
    assert_eq!(d.state(), DialogState::Terminated);
    let bye_ok = answer(&bye, 200, "bob1", None, &[]);
    d.receive_response(&bye_ok).unwrap();
    assert_eq!(d.state(), DialogState::Terminated);
    assert!(matches!(
        d.info(&tally("z9hG4bKx"), "text/plain", "x"),
        Err(DialogError::NotAllowed {
            method: Method::Info,
            state: DialogState::Terminated
        })
    ));
}

#[test]
fn bye_takes_the_next_local_number_after_the_ack() {
    let invite = invite_to_bob();
    let ok = answer(&invite, 200, "bob1", Some("<sip:bob@192.0.2.20>"), &[]);
    let mut d = Dialog::uac(&invite, &ok).unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);
    assert!(d.route_set().is_empty());
    sent(d.ack(&ok, &tally("z9hG4bKa")).unwrap());
    let bye = sent(d.bye(&tally("z9hG4bKb")).unwrap());
    assert_eq!(bye.cseq().unwrap().to_string(), "102 BYE");
    assert_eq!(bye.request_uri_str(), Some("sip:bob@192.0.2.20"));
    assert!(routes(&bye).is_empty());
}

/// The caller's phone calls Tally through an edge proxy; Tally answers. Both
/// ends keep a dialog: Tally a UAS one, the phone a UAC one.
fn inbound_call() -> (Message, Dialog, Dialog) {
    let invite = sent(
        RequestBuilder::new(Method::Invite, "sip:200@pbx.example.com")
            .header(
                HeaderName::Via,
                "SIP/2.0/UDP edge.example.com;branch=z9hG4bKedge1",
            )
            .header(
                HeaderName::Via,
                "SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKph1;rport",
            )
            .header(HeaderName::MaxForwards, 69)
            .header(HeaderName::RecordRoute, "<sip:edge.example.com;lr>")
            .header(HeaderName::From, "<sip:101@pbx.example.com>;tag=ph1")
            .header(HeaderName::To, "<sip:200@pbx.example.com>")
            .header(HeaderName::CallId, "call-from-101@192.0.2.20")
            .header(HeaderName::CSeq, "1 INVITE")
            .header(HeaderName::Contact, "<sip:101@192.0.2.20:5060>")
            .body("application/sdp", SDP),
    );
    // The Record-Route is copied by the builder (RFC 3261 §12.1.1).
    let ok = ResponseBuilder::reply(&invite, 200)
        .to_tag("tly9")
        .header(HeaderName::Contact, TALLY_CONTACT)
        .build()
        .unwrap();
    let tally_side = Dialog::uas(&invite, &ok, false, 5000).unwrap();
    let phone_side = Dialog::uac(&invite, &ok).unwrap();
    (ok, tally_side, phone_side)
}

#[test]
fn uas_dialog_from_invite_and_200() {
    let (_ok, d, phone_side) = inbound_call();
    assert_eq!(d.role(), Role::Uas);
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.id().local_tag, "tly9");
    assert_eq!(d.id().remote_tag, "ph1");
    assert_eq!(phone_side.id().local_tag, "ph1");
    assert_eq!(phone_side.id().remote_tag, "tly9");
    assert_eq!(d.route_set(), ["sip:edge.example.com;lr"]);
    assert_eq!(d.remote_target(), "sip:101@192.0.2.20:5060");
    assert_eq!(d.remote_seq(), Some(1));
    assert_eq!(d.local_seq(), None);
    assert_eq!(d.local_uri(), "<sip:200@pbx.example.com>;tag=tly9");
    assert_eq!(d.remote_uri(), "<sip:101@pbx.example.com>;tag=ph1");
    assert_eq!(phone_side.remote_target(), "sip:pbx@192.0.2.10:5060");
}

#[test]
fn uas_remote_sequence_checks() {
    let (ok, mut d, mut phone_side) = inbound_call();
    let stale = phone_side.clone();

    // The ACK repeats the INVITE's number and is accepted.
    let ack = sent(phone_side.ack(&ok, &phone("z9hG4bKpa")).unwrap());
    assert_eq!(ack.cseq().unwrap().seq, 1);
    assert_eq!(ack.request_uri_str(), Some("sip:pbx@192.0.2.10:5060"));
    assert_eq!(routes(&ack), ["<sip:edge.example.com;lr>"]);
    d.receive_request(&ack).unwrap();
    assert_eq!(d.remote_seq(), Some(1));

    let info = sent(
        phone_side
            .info(
                &phone("z9hG4bKp2"),
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n",
            )
            .unwrap(),
    );
    d.receive_request(&info).unwrap();
    assert_eq!(d.remote_seq(), Some(2));
    let info3 = sent(
        phone_side
            .info(
                &phone("z9hG4bKp3"),
                "application/dtmf-relay",
                "Signal=6\r\n",
            )
            .unwrap(),
    );
    d.receive_request(&info3).unwrap();
    assert_eq!(d.remote_seq(), Some(3));

    // A request numbered 2 again (lower than 3) is out of order: 500.
    let mut stale = stale;
    let late = sent(
        stale
            .info(
                &phone("z9hG4bKp4"),
                "application/dtmf-relay",
                "Signal=7\r\n",
            )
            .unwrap(),
    );
    assert_eq!(late.cseq().unwrap().seq, 2);
    let before = d.clone();
    let err = d.receive_request(&late).unwrap_err();
    assert_eq!(
        err,
        DialogError::CSeqOutOfOrder {
            received: 2,
            remote_seq: 3
        }
    );
    assert_eq!(err.status_code(), 500);
    assert_eq!(d, before, "a refused request changes nothing");
    // Equal is refused as well.
    let err = d.receive_request(&info3).unwrap_err();
    assert_eq!(
        err,
        DialogError::CSeqOutOfOrder {
            received: 3,
            remote_seq: 3
        }
    );

    // A re-INVITE from the phone with a new Contact refreshes the target.
    let moved = Local {
        via: ViaValue {
            transport: "UDP",
            sent_by: "192.0.2.99:5060",
            branch: "z9hG4bKp5",
        },
        contact: "<sip:101@192.0.2.99:5060>",
    };
    let reinvite = sent(
        phone_side
            .reinvite(&moved, Some(Bytes::from_static(SDP.as_bytes())))
            .unwrap(),
    );
    d.receive_request(&reinvite).unwrap();
    assert_eq!(d.remote_seq(), Some(4));
    assert_eq!(d.remote_target(), "sip:101@192.0.2.99:5060");

    // INFO is no target refresh, whatever Contact it might carry.
    let info5 = sent(
        phone_side
            .request(Method::Info, &phone("z9hG4bKp6"))
            .unwrap()
            .header(HeaderName::Contact, "<sip:elsewhere@192.0.2.77>"),
    );
    d.receive_request(&info5).unwrap();
    assert_eq!(d.remote_target(), "sip:101@192.0.2.99:5060");
}

#[test]
fn uas_first_request_uses_the_chosen_cseq() {
    let (_ok, mut d, mut phone_side) = inbound_call();
    let bye = sent(d.bye(&tally("z9hG4bKtb")).unwrap());
    assert_eq!(bye.cseq().unwrap().to_string(), "5000 BYE");
    assert_eq!(d.local_seq(), Some(5000));
    assert_eq!(bye.request_uri_str(), Some("sip:101@192.0.2.20:5060"));
    assert_eq!(routes(&bye), ["<sip:edge.example.com;lr>"]);
    assert_eq!(bye.from().unwrap().tag(), Some("tly9"));
    assert_eq!(bye.to().unwrap().tag(), Some("ph1"));
    assert_eq!(d.state(), DialogState::Terminated);
    // The phone sees the BYE as in its dialog, numbered from Tally's start.
    phone_side.receive_request(&bye).unwrap();
    assert_eq!(phone_side.remote_seq(), Some(5000));
    assert_eq!(phone_side.state(), DialogState::Terminated);
}

#[test]
fn bye_from_the_remote_terminates() {
    let (_ok, mut d, mut phone_side) = inbound_call();
    let bye = sent(phone_side.bye(&phone("z9hG4bKpb")).unwrap());
    assert_eq!(phone_side.state(), DialogState::Terminated);
    assert_eq!(DialogId::of_received(&bye).unwrap(), *d.id());
    d.receive_request(&bye).unwrap();
    assert_eq!(d.state(), DialogState::Terminated);
    // Anything later in this dialog gets a 481.
    let err = d.receive_request(&bye).unwrap_err();
    assert_eq!(err, DialogError::Terminated);
    assert_eq!(err.status_code(), 481);
}

#[test]
fn requests_of_another_dialog_are_refused() {
    let (_ok, mut d, _) = inbound_call();
    let (_, _, mut other_phone) = {
        let invite = invite_to_bob();
        let ok = answer(&invite, 200, "zzz", Some("<sip:bob@192.0.2.20>"), &[]);
        let tally_side = Dialog::uac(&invite, &ok).unwrap();
        let bob_side = Dialog::uas(&invite, &ok, false, 1).unwrap();
        (ok, tally_side, bob_side)
    };
    let bye = sent(other_phone.bye(&phone("z9hG4bKo")).unwrap());
    let err = d.receive_request(&bye).unwrap_err();
    assert_eq!(err, DialogError::WrongDialog);
    assert_eq!(err.status_code(), 481);
    assert_eq!(d.state(), DialogState::Confirmed);
}

#[test]
fn strict_route_first() {
    let invite = invite_to_bob();
    // On the wire, topmost first: the loose proxy near Bob, then an RFC 2543
    // proxy near Tally. Reversed, the strict one is the first hop.
    let rr = [
        "<sip:p2.biloxi.example.com;lr>",
        "<sip:old.atlanta.example.com;transport=udp>",
    ];
    let ok = answer(&invite, 200, "bob1", Some("<sip:bob@192.0.2.20>"), &rr);
    let mut d = Dialog::uac(&invite, &ok).unwrap();
    assert_eq!(
        d.route_set(),
        [
            "sip:old.atlanta.example.com;transport=udp",
            "sip:p2.biloxi.example.com;lr"
        ]
    );
    let bye = sent(d.bye(&tally("z9hG4bKs")).unwrap());
    assert_eq!(
        bye.request_uri_str(),
        Some("sip:old.atlanta.example.com;transport=udp")
    );
    assert_eq!(
        routes(&bye),
        ["<sip:p2.biloxi.example.com;lr>", "<sip:bob@192.0.2.20>"]
    );
    let ack = sent(d.ack(&ok, &tally("z9hG4bKsa")).unwrap());
    assert_eq!(
        ack.request_uri_str(),
        Some("sip:old.atlanta.example.com;transport=udp")
    );
    assert_eq!(
        routes(&ack),
        ["<sip:p2.biloxi.example.com;lr>", "<sip:bob@192.0.2.20>"]
    );
}

#[test]
fn forked_invite_gives_one_early_dialog_per_tag() {
    let invite = invite_to_bob();
    let desk = answer(&invite, 180, "desk", Some("<sip:bob@192.0.2.31>"), &[]);
    let mobile = answer(&invite, 183, "mobile", Some("<sip:bob@192.0.2.32>"), &[]);
    let mut a = Dialog::uac(&invite, &desk).unwrap();
    let mut b = Dialog::uac(&invite, &mobile).unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(a.id().call_id, b.id().call_id);
    assert_eq!(
        (a.state(), b.state()),
        (DialogState::Early, DialogState::Early)
    );
    assert_eq!(DialogId::of_received(&mobile).unwrap(), *b.id());

    // An early dialog takes UPDATE but not a re-INVITE.
    let upd = sent(b.update(&tally("z9hG4bKu"), None).unwrap());
    assert_eq!(upd.cseq().unwrap().to_string(), "102 UPDATE");
    assert_eq!(upd.request_uri_str(), Some("sip:bob@192.0.2.32"));
    assert_eq!(upd.header(HeaderName::Contact), Some(TALLY_CONTACT));
    assert!(matches!(
        b.reinvite(&tally("z9hG4bKr"), None),
        Err(DialogError::NotAllowed {
            method: Method::Invite,
            state: DialogState::Early
        })
    ));

    // The mobile answers, through a proxy that record-routes only now:
    // confirming recomputes the route set from the 2xx (§13.2.2.4).
    let ok = answer(
        &invite,
        200,
        "mobile",
        Some("<sip:bob@192.0.2.33>"),
        &["<sip:p9.example.com;lr>"],
    );
    assert_eq!(a.receive_response(&ok), Err(DialogError::WrongDialog));
    b.receive_response(&ok).unwrap();
    assert_eq!(b.state(), DialogState::Confirmed);
    assert_eq!(b.remote_target(), "sip:bob@192.0.2.33");
    assert_eq!(b.route_set(), ["sip:p9.example.com;lr"]);
    // The fork that lost is ended by the call engine.
    assert_eq!(a.state(), DialogState::Early);
    a.terminate();
    assert_eq!(a.state(), DialogState::Terminated);
    // The ACK goes to the winner, with the INVITE's number, not the UPDATE's.
    let ack = sent(b.ack(&ok, &tally("z9hG4bKfa")).unwrap());
    assert_eq!(ack.cseq().unwrap().to_string(), "101 ACK");
    assert_eq!(ack.to().unwrap().tag(), Some("mobile"));
}

#[test]
fn early_dialog_ends_with_a_final_non_2xx() {
    let invite = invite_to_bob();
    let ringing = answer(&invite, 180, "bob1", None, &[]);
    let mut d = Dialog::uac(&invite, &ringing).unwrap();
    // No Contact in the 180: the Request-URI stands in until the 2xx.
    assert_eq!(d.remote_target(), "sip:bob@biloxi.example.com");
    let busy = answer(&invite, 486, "bob1", None, &[]);
    d.receive_response(&busy).unwrap();
    assert_eq!(d.state(), DialogState::Terminated);
}

#[test]
fn responses_that_create_no_dialog() {
    let invite = invite_to_bob();
    let trying = ResponseBuilder::reply(&invite, 100).build().unwrap();
    assert_eq!(
        Dialog::uac(&invite, &trying),
        Err(DialogError::NotDialogCreating(100))
    );
    let untagged = ResponseBuilder::reply(&invite, 180).build().unwrap();
    assert_eq!(
        Dialog::uac(&invite, &untagged),
        Err(DialogError::NotDialogCreating(180))
    );
    let busy = answer(&invite, 486, "b", None, &[]);
    assert_eq!(
        Dialog::uac(&invite, &busy),
        Err(DialogError::NotDialogCreating(486))
    );
    let no_contact = answer(&invite, 200, "b", None, &[]);
    assert_eq!(
        Dialog::uac(&invite, &no_contact).unwrap_err().status_code(),
        400,
        "a 2xx must say where the dialog's requests go"
    );
    // A 2xx from an RFC 2543 UAS has no tag: the null tag.
    let old = ResponseBuilder::reply(&invite, 200)
        .header(HeaderName::Contact, "<sip:bob@192.0.2.20>")
        .build()
        .unwrap();
    assert_eq!(Dialog::uac(&invite, &old).unwrap().id().remote_tag, "");
    // A response to another request does not pair with this INVITE.
    let other = answer(&invite_to_bob(), 200, "b", Some("<sip:b@h>"), &[]);
    let mut raw = invite_to_bob().as_bytes().to_vec();
    let at = raw.windows(3).position(|w| w == b"101").unwrap();
    raw[at..at + 3].copy_from_slice(b"555");
    let renumbered = Message::parse(raw).unwrap();
    assert_eq!(
        Dialog::uac(&renumbered, &other),
        Err(DialogError::WrongDialog)
    );
}

#[test]
fn uas_early_dialog_confirmed_or_ended_by_what_tally_sends() {
    let invite = sent(
        RequestBuilder::new(Method::Invite, "sips:200@pbx.example.com")
            .header(
                HeaderName::Via,
                "SIP/2.0/TLS 192.0.2.20:5061;branch=z9hG4bKt1",
            )
            .header(HeaderName::MaxForwards, 70)
            .header(HeaderName::From, "<sips:101@pbx.example.com>;tag=ph2")
            .header(HeaderName::To, "<sips:200@pbx.example.com>")
            .header(HeaderName::CallId, "tls-call@192.0.2.20")
            .header(HeaderName::CSeq, "7 INVITE")
            .header(HeaderName::Contact, "<sips:101@192.0.2.20:5061>"),
    );
    let ringing = ResponseBuilder::reply(&invite, 180)
        .to_tag("tly2")
        .header(HeaderName::Contact, "<sips:pbx@192.0.2.10:5061>")
        .build()
        .unwrap();
    let mut d = Dialog::uas(&invite, &ringing, true, 1).unwrap();
    assert_eq!(d.state(), DialogState::Early);
    assert!(d.secure());
    assert!(!Dialog::uas(&invite, &ringing, false, 1).unwrap().secure());
    // The callee may not hang up an early dialog with BYE (it answers 4xx).
    assert!(matches!(
        d.bye(&tally("z9hG4bKx")),
        Err(DialogError::NotAllowed {
            method: Method::Bye,
            state: DialogState::Early
        })
    ));
    let mut declined = d.clone();
    d.response_sent(&ringing).unwrap();
    assert_eq!(d.state(), DialogState::Early);
    let ok = ResponseBuilder::reply(&invite, 200)
        .to_tag("tly2")
        .header(HeaderName::Contact, "<sips:pbx@192.0.2.10:5061>")
        .build()
        .unwrap();
    d.response_sent(&ok).unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);

    let decline = ResponseBuilder::reply(&invite, 603)
        .to_tag("tly2")
        .build()
        .unwrap();
    declined.response_sent(&decline).unwrap();
    assert_eq!(declined.state(), DialogState::Terminated);
    let wrong_tag = ResponseBuilder::reply(&invite, 200)
        .to_tag("other")
        .build()
        .unwrap();
    assert_eq!(d.response_sent(&wrong_tag), Err(DialogError::WrongDialog));
}

#[test]
fn in_dialog_481_or_408_ends_the_dialog() {
    let invite = invite_to_bob();
    let ok = answer(&invite, 200, "bob1", Some("<sip:bob@192.0.2.20>"), &[]);
    let mut d = Dialog::uac(&invite, &ok).unwrap();
    let info = sent(
        d.info(&tally("z9hG4bKi"), "application/dtmf-relay", "Signal=1\r\n")
            .unwrap(),
    );
    let gone = answer(&info, 481, "bob1", None, &[]);
    d.receive_response(&gone).unwrap();
    assert_eq!(d.state(), DialogState::Terminated);
    // A non-2xx to a re-INVITE keeps the dialog.
    let mut d = Dialog::uac(&invite, &ok).unwrap();
    let re = sent(d.reinvite(&tally("z9hG4bKr"), None).unwrap());
    d.receive_response(&answer(&re, 488, "bob1", Some("<sip:bob@192.0.2.99>"), &[]))
        .unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.remote_target(), "sip:bob@192.0.2.20");
}

#[test]
fn refer_with_replaces_notify_and_info() {
    let (_ok, mut a_leg, mut phone_side) = inbound_call();
    // The dialog to be replaced: Tally's leg to Bob.
    let invite = invite_to_bob();
    let ok = answer(&invite, 200, "bob1", Some("<sip:bob@192.0.2.21>"), &[]);
    let b_leg = Dialog::uac(&invite, &ok).unwrap();

    let refer_to = refer_to_with_replaces(b_leg.remote_target(), &b_leg.id().replaces(false));
    assert_eq!(
        refer_to,
        "<sip:bob@192.0.2.21?Replaces=b2b-leg-1%40192.0.2.10%3Bto-tag%3Dbob1%3Bfrom-tag%3Dtly1>"
    );
    let refer = sent(
        a_leg
            .refer(
                &tally("z9hG4bKref"),
                &refer_to,
                Some("<sip:200@pbx.example.com>"),
            )
            .unwrap(),
    );
    assert_eq!(refer.method(), Some(&Method::Refer));
    assert_eq!(refer.cseq().unwrap().to_string(), "5000 REFER");
    assert_eq!(refer.header(HeaderName::Contact), Some(TALLY_CONTACT));
    assert_eq!(
        refer.header(HeaderName::ReferredBy),
        Some("<sip:200@pbx.example.com>")
    );
    let parsed = ReferTo::parse(refer.header(HeaderName::ReferTo).unwrap()).unwrap();
    assert_eq!(parsed.target.uri.user(), Some("bob"));
    let replaces = parsed.replaces.unwrap();
    assert_eq!(replaces, b_leg.id().replaces(false));
    // Bob, receiving the INVITE with that Replaces, finds his side of the leg.
    let bob = Dialog::uas(&invite, &ok, false, 1).unwrap();
    assert_eq!(DialogId::from_replaces(&replaces), *bob.id());
    phone_side.receive_request(&refer).unwrap();
    assert_eq!(phone_side.remote_seq(), Some(5000));

    // A Refer-To that does not parse is refused before anything is written.
    let seq = a_leg.local_seq();
    assert!(
        a_leg
            .refer(&tally("z9hG4bKbad"), "<sip:bob@h", None)
            .is_err()
    );
    assert_eq!(a_leg.local_seq(), seq);

    // The phone reports the progress of the referred INVITE.
    let trying = sent(
        phone_side
            .refer_notify(
                &phone("z9hG4bKn1"),
                None,
                "active;expires=60",
                "SIP/2.0 100 Trying",
            )
            .unwrap(),
    );
    let done = sent(
        phone_side
            .refer_notify(
                &phone("z9hG4bKn2"),
                Some(5000),
                "terminated;reason=noresource",
                "SIP/2.0 200 OK",
            )
            .unwrap(),
    );
    assert_eq!(trying.header(HeaderName::Event), Some("refer"));
    assert_eq!(done.header(HeaderName::Event), Some("refer;id=5000"));
    assert_eq!(
        done.header(HeaderName::SubscriptionState),
        Some("terminated;reason=noresource")
    );
    assert_eq!(done.content_type(), Some("message/sipfrag;version=2.0"));
    assert_eq!(done.body(), b"SIP/2.0 200 OK\r\n");
    assert_eq!(
        done.header(HeaderName::Contact),
        Some("<sip:101@192.0.2.20:5060>")
    );
    assert_eq!(done.cseq().unwrap().to_string(), "3 NOTIFY");
    a_leg.receive_request(&trying).unwrap();
    a_leg.receive_request(&done).unwrap();
    assert_eq!(a_leg.remote_seq(), Some(3));
    assert!(
        phone_side
            .refer_notify(
                &phone("z9hG4bKn3"),
                None,
                "active",
                "SIP/2.0 200 OK\r\nVia: x"
            )
            .is_err()
    );

    // INFO carries DTMF; it needs no Contact.
    let dtmf = sent(
        a_leg
            .info(
                &tally("z9hG4bKinfo"),
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n",
            )
            .unwrap(),
    );
    assert_eq!(dtmf.cseq().unwrap().to_string(), "5001 INFO");
    assert_eq!(dtmf.content_type(), Some("application/dtmf-relay"));
    assert_eq!(dtmf.body(), b"Signal=5\r\nDuration=160\r\n");
    assert!(dtmf.header(HeaderName::Contact).is_none());
    phone_side.receive_request(&dtmf).unwrap();
}

#[test]
fn ack_and_cancel_are_not_dialog_requests() {
    let (_ok, mut d, _) = inbound_call();
    assert_eq!(
        d.request(Method::Ack, &tally("z9hG4bK1")).unwrap_err(),
        DialogError::NotADialogRequest(Method::Ack)
    );
    assert_eq!(
        d.request(Method::Cancel, &tally("z9hG4bK1")).unwrap_err(),
        DialogError::NotADialogRequest(Method::Cancel)
    );
    assert_eq!(d.local_seq(), None);
    // An ACK needs a 2xx to an INVITE.
    let invite = invite_to_bob();
    let ringing = answer(&invite, 180, "bob1", Some("<sip:bob@h>"), &[]);
    let early = Dialog::uac(&invite, &ringing).unwrap();
    assert!(early.ack(&ringing, &tally("z9hG4bK2")).is_err());
}

#[test]
fn local_cseq_stays_below_two_to_the_31() {
    let invite = invite_to_bob();
    let ok = answer(&invite, 200, "bob1", Some("<sip:bob@h>"), &[]);
    assert_eq!(
        Dialog::uas(&invite, &ok, false, 1 << 31),
        Err(DialogError::CSeqOverflow)
    );
    let mut d = Dialog::uas(&invite, &ok, false, (1 << 31) - 1).unwrap();
    let last = sent(d.info(&tally("z9hG4bK1"), "text/plain", "x").unwrap());
    assert_eq!(last.cseq().unwrap().seq, (1 << 31) - 1);
    assert_eq!(
        d.info(&tally("z9hG4bK2"), "text/plain", "y").unwrap_err(),
        DialogError::CSeqOverflow
    );
}

#[test]
fn dialog_id_of_received_messages() {
    let invite = invite_to_bob();
    // An initial request has no To tag: it is in no dialog.
    assert_eq!(
        DialogId::of_received(&invite),
        Err(DialogError::MissingTag(HeaderName::To))
    );
    let (_ok, tally_side, mut phone_side) = inbound_call();
    let bye = sent(phone_side.bye(&phone("z9hG4bKb")).unwrap());
    assert_eq!(DialogId::of_received(&bye).unwrap(), *tally_side.id());
    let bye_ok = ResponseBuilder::reply(&bye, 200).build().unwrap();
    assert_eq!(DialogId::of_received(&bye_ok).unwrap(), *phone_side.id());
}
