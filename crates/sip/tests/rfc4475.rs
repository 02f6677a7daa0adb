//! The 49 messages of RFC 4475 (plus `test.dat`, a garbage message that ships
//! with the corpus), each with what RFC 4475 says an element must make of it.
//! Valid messages parse with the right values; invalid ones are refused by
//! the parser (framing defects) or by `validate` (header defects), and the
//! refusal names the defect.

use std::path::PathBuf;

use sip::error::ParseError;
use sip::header::HeaderName;
use sip::headers::{Contact, parse_date};
use sip::uri::{Host, Uri};
use sip::validate::{check_request, check_response, reject, reject_unparsable};
use sip::{Message, Method};

fn raw(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rfc4475")
        .join(format!("{name}.dat"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn parse(name: &str) -> Message {
    Message::parse(raw(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A valid request: parses and passes `check_request`.
fn valid_request(name: &str) -> Message {
    let m = parse(name);
    check_request(&m).unwrap_or_else(|e| panic!("{name}: {e}"));
    m
}

fn parse_err(name: &str) -> ParseError {
    match Message::parse(raw(name)) {
        Ok(_) => panic!("{name} parsed"),
        Err(e) => e,
    }
}

fn check_err(name: &str) -> ParseError {
    let m = parse(name);
    let r = if m.is_request() {
        check_request(&m)
    } else {
        check_response(&m)
    };
    r.expect_err(name)
}

#[test]
fn every_file_is_covered() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dat"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 50);
    let src = include_str!("rfc4475.rs");
    for n in names {
        let stem = n.trim_end_matches(".dat");
        assert!(src.contains(&format!("\"{stem}\"")), "{stem} has no test");
    }
}

// ---- 3.1.1 Valid messages -------------------------------------------------

#[test]
fn wsinv_short_tortuous_invite() {
    let m = valid_request("wsinv");
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(
        m.request_uri_str(),
        Some("sip:vivekg@chair-dnrc.example.com;unknownparam")
    );
    let to = m.to().unwrap();
    assert_eq!(to.uri.as_str(), "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some("1918181833n"));
    let from = m.from().unwrap();
    assert_eq!(from.display.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.uri.as_str(), "sip:jdrosen@example.com");
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(m.call_id().unwrap(), "wsinv.ndaksdj@192.0.2.1");
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    let vias: Vec<_> = m.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].transport, "UDP");
    assert_eq!(vias[0].host, Host::V4("192.0.2.2".parse().unwrap()));
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert_eq!(
        (vias[1].transport, vias[1].branch()),
        ("TCP", Some("z9hG4bK9ikj8"))
    );
    assert_eq!(vias[1].host, Host::Name("spindle.example.com"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.header(HeaderName::Subject), Some(""));
    let nf = m.header_named("newfangledheader").unwrap();
    assert!(nf.starts_with("newfangled value") && nf.ends_with("continued newfangled value"));
    assert!(!nf.contains(['\r', '\n']));
    assert_eq!(
        m.header_named("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );
    let route = m.name_addrs(HeaderName::Route).next().unwrap().unwrap();
    assert!(route.uri.sip().unwrap().lr());
    let c: Vec<_> = m.contacts().collect::<Result<_, _>>().unwrap();
    assert_eq!(c.len(), 1);
    let a = c[0].addr().unwrap();
    assert_eq!(a.display.as_deref(), Some(r#"Quoted string """#));
    assert_eq!(a.params.get("newparam"), Some(Some("newvalue")));
    assert!(a.params.contains("secondparam"));
    assert_eq!(c[0].q(), Ok(Some(330)));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let m = valid_request("intmeth");
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(&Method::Other(method.into())));
    assert_eq!(m.cseq().unwrap().method.as_str(), method);
    let uri = m.request_uri().unwrap().unwrap();
    let u = uri.sip().unwrap();
    assert_eq!(
        u.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        u.password,
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(u.host, Host::Name("example.com"));
    assert_eq!(
        m.to().unwrap().display.as_deref(),
        Some("BEL:\u{7} NUL:\0 DEL:\u{7f}")
    );
    let from = m.from().unwrap();
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    let fp = from.params.param("fromParam''~+*_!.-%").unwrap();
    assert_eq!(fp.value_unquoted().as_deref(), Some("работающий"));
    assert_eq!(
        m.call_id().unwrap(),
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    assert_eq!(m.via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    assert_eq!(m.max_forwards().unwrap(), Some(255));
    assert_eq!(
        m.header_named("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}\u{5927}\u{505c}\u{96fb}")
    );
}

#[test]
fn esc01_valid_use_of_escapes() {
    let m = valid_request("esc01");
    let uri = m.request_uri().unwrap().unwrap();
    assert_eq!(
        &*uri.sip().unwrap().user_unescaped().unwrap(),
        b"sips:user@example.com"
    );
    assert_eq!(uri.sip().unwrap().host, Host::Name("example.net"));
    let to = m.to().unwrap();
    assert_eq!(&*to.uri.sip().unwrap().user_unescaped().unwrap(), b"user");
    let from = m.from().unwrap();
    assert_eq!(
        &*from.uri.sip().unwrap().user_unescaped().unwrap(),
        b"I have spaces"
    );
    let c = m.contacts().next().unwrap().unwrap();
    let cu = c.addr().unwrap().uri.sip().unwrap().to_owned();
    assert_eq!(&*cu.user_unescaped().unwrap(), b"caller");
    assert!(cu.params.contains("%6C%72"));
    assert_eq!(m.content_type(), Some("application/sdp"));
    assert_eq!(m.call_id().unwrap(), "esc01.239409asdfakjkn23onasd0-3234");
}

#[test]
fn escnull_escaped_nulls_in_uris() {
    let m = valid_request("escnull");
    let to = m.to().unwrap();
    assert_eq!(
        &*to.uri.sip().unwrap().user_unescaped().unwrap(),
        b"null-\0-null"
    );
    let users: Vec<Vec<u8>> = m
        .contacts()
        .map(|c| {
            c.unwrap()
                .addr()
                .unwrap()
                .uri
                .sip()
                .unwrap()
                .user_unescaped()
                .unwrap()
                .into_owned()
        })
        .collect();
    assert_eq!(users, vec![b"\0".to_vec(), b"\0\0".to_vec()]);
}

#[test]
fn esc02_use_of_percent_when_not_an_escape() {
    let m = valid_request("esc02");
    // The method is not REGISTER: escapes mean nothing in a method token.
    assert_eq!(m.method(), Some(&Method::Other("RE%47IST%45R".into())));
    assert_eq!(m.to().unwrap().display.as_deref(), Some("%Z%45"));
    assert_eq!(m.via().unwrap().branch(), Some("z9hG4bK209%fzsnel234"));
    // "C%6Fntact" is an extension header, not a Contact.
    assert_eq!(m.contacts().count(), 2);
    assert_eq!(
        m.header_named("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );
}

#[test]
fn lwsdisp_no_lws_between_display_name_and_angle() {
    let m = valid_request("lwsdisp");
    assert_eq!(m.from().unwrap().display.as_deref(), Some("caller"));
    assert_eq!(m.from().unwrap().tag(), Some("323"));
}

#[test]
fn longreq_long_values() {
    let m = valid_request("longreq");
    let to = m.to().unwrap();
    assert_eq!(to.display.as_deref().map(str::len), Some(103));
    assert!(to.uri.as_str().len() > 200);
    assert!(to.uri.sip().unwrap().params.contains("unknownparam1"));
    assert_eq!(m.vias().count(), 34);
    let unknown = m
        .fields()
        .find(|f| f.name.starts_with("Unknown-LongLong"))
        .unwrap();
    assert!(unknown.name.len() > 90 && unknown.value.len() > 300);
    assert_eq!(m.via().unwrap().host, Host::Name("sip33.example.com"));
    assert!(m.from().unwrap().tag().unwrap().len() > 100);
    assert_eq!(m.content_length(), m.body().len());
}

#[test]
fn dblreq_extra_request_after_content_length_is_discarded() {
    let m = valid_request("dblreq");
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body().is_empty());
    assert_eq!(
        m.call_id().unwrap(),
        "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    );
}

#[test]
fn semiuri_semicolon_separated_parameters_in_user() {
    let m = valid_request("semiuri");
    let uri = m.request_uri().unwrap().unwrap();
    let u = uri.sip().unwrap();
    assert_eq!(u.user, Some("user;par=u%40example.net"));
    assert_eq!(u.host, Host::Name("example.com"));
    assert!(u.params.is_empty());
    assert_eq!(m.list(HeaderName::Accept).count(), 6);
}

#[test]
fn transports_varied_and_unknown() {
    let m = valid_request("transports");
    let t: Vec<_> = m.vias().map(|v| v.unwrap().transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn mpart01_multipart_body() {
    let m = valid_request("mpart01");
    assert!(m.content_type().unwrap().starts_with("multipart/mixed"));
    assert_eq!(m.body().len(), 553);
}

#[test]
fn unreason_utf8_reason_phrase() {
    let m = parse("unreason");
    check_response(&m).unwrap();
    assert_eq!(m.status(), Some(200));
    assert!(m.reason_phrase().unwrap().starts_with("= 2**3 * 5**2 "));
    assert!(m.reason_phrase().unwrap().contains("\u{43d}\u{43e}"));
}

#[test]
fn noreason_empty_reason_phrase() {
    let m = parse("noreason");
    check_response(&m).unwrap();
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason_phrase(), Some(""));
}

// ---- 3.1.2 Invalid messages -----------------------------------------------

#[test]
fn badinv01_extraneous_separators() {
    assert!(matches!(
        check_err("badinv01"),
        ParseError::BadHeader(HeaderName::Via, _)
    ));
}

#[test]
fn clerr_content_length_larger_than_message() {
    assert!(matches!(
        parse_err("clerr"),
        ParseError::BodyTooShort { .. }
    ));
}

#[test]
fn ncl_negative_content_length() {
    assert!(matches!(parse_err("ncl"), ParseError::ContentLength(_)));
}

#[test]
fn scalar02_overlarge_request_scalars() {
    assert!(matches!(
        check_err("scalar02"),
        ParseError::BadHeader(HeaderName::CSeq, _)
    ));
    let m = parse("scalar02");
    assert!(m.max_forwards().is_err());
    assert!(m.seconds(HeaderName::Expires).is_err());
    assert!(m.contacts().next().unwrap().unwrap().expires().is_err());
}

#[test]
fn scalarlg_overlarge_response_scalars() {
    assert!(matches!(
        check_err("scalarlg"),
        ParseError::BadHeader(HeaderName::CSeq, _)
    ));
    let m = parse("scalarlg");
    let ra = m.header(HeaderName::RetryAfter).unwrap();
    assert!(sip::headers::RetryAfter::parse(ra).is_err());
}

#[test]
fn quotbal_unterminated_quoted_string() {
    assert!(matches!(
        check_err("quotbal"),
        ParseError::BadHeader(HeaderName::To, _)
    ));
}

#[test]
fn ltgtruri_angle_brackets_around_request_uri() {
    assert!(matches!(
        check_err("ltgtruri"),
        ParseError::BadRequestUri(_)
    ));
}

#[test]
fn lwsruri_embedded_lws_in_request_uri() {
    assert!(matches!(parse_err("lwsruri"), ParseError::StartLine(_)));
}

#[test]
fn lwsstart_multiple_spaces_in_request_line() {
    assert!(matches!(parse_err("lwsstart"), ParseError::StartLine(_)));
}

#[test]
fn trws_trailing_space_in_request_line() {
    assert!(matches!(parse_err("trws"), ParseError::StartLine(_)));
}

#[test]
fn escruri_escaped_headers_in_request_uri() {
    assert!(matches!(check_err("escruri"), ParseError::BadRequestUri(_)));
}

#[test]
fn baddate_invalid_time_zone() {
    assert!(matches!(
        check_err("baddate"),
        ParseError::BadHeader(HeaderName::Date, _)
    ));
    let m = parse("baddate");
    assert!(parse_date(m.header(HeaderName::Date).unwrap()).is_err());
}

#[test]
fn regbadct_name_addr_without_angle_brackets() {
    assert!(matches!(
        check_err("regbadct"),
        ParseError::BadHeader(HeaderName::Contact, _)
    ));
}

#[test]
fn badaspec_spaces_within_addr_spec() {
    assert!(matches!(
        check_err("badaspec"),
        ParseError::BadHeader(HeaderName::To, _)
    ));
}

#[test]
fn baddn_non_token_display_name() {
    assert!(matches!(
        check_err("baddn"),
        ParseError::BadHeader(HeaderName::From, _)
    ));
}

#[test]
fn badvers_unknown_protocol_version() {
    let e = parse_err("badvers");
    assert_eq!(e, ParseError::Version);
    assert_eq!(e.status_code(), 505);
    // Answered with 505, echoing what can be echoed.
    let resp = reject_unparsable(&raw("badvers"), &e).expect("a 505");
    let resp = Message::parse(resp).unwrap();
    assert_eq!(resp.status(), Some(505));
    assert_eq!(resp.call_id().unwrap(), "badvers.31417@c.example.com");
}

#[test]
fn mismatch01_start_line_and_cseq_method() {
    assert_eq!(check_err("mismatch01"), ParseError::CSeqMethodMismatch);
}

#[test]
fn mismatch02_unknown_method_with_cseq_mismatch() {
    assert_eq!(check_err("mismatch02"), ParseError::CSeqMethodMismatch);
}

#[test]
fn bigcode_overlarge_response_code() {
    assert_eq!(parse_err("bigcode"), ParseError::StatusCode);
    assert!(reject_unparsable(&raw("bigcode"), &ParseError::StatusCode).is_none());
}

#[test]
fn test_dat_garbage() {
    assert!(matches!(parse_err("test"), ParseError::StartLine(_)));
}

// ---- 3.2 Transaction layer semantics ---------------------------------------

#[test]
fn badbranch_branch_without_cookie_suffix() {
    let m = valid_request("badbranch");
    let v = m.via().unwrap();
    assert_eq!(v.branch(), Some("z9hG4bK"));
    // Only the cookie: not usable as an RFC 3261 transaction id.
    assert!(!v.has_rfc3261_branch());
}

// ---- 3.3 Application layer semantics ---------------------------------------

#[test]
fn insuf_missing_required_headers() {
    assert!(matches!(check_err("insuf"), ParseError::MissingHeader(_)));
    // Without From/To/Call-ID nothing can be echoed: dropped, not answered.
    let m = parse("insuf");
    assert!(reject(&m, &check_err("insuf"), "t").is_none());
}

#[test]
fn unkscm_unknown_request_uri_scheme() {
    let m = valid_request("unkscm");
    assert!(matches!(
        m.request_uri().unwrap().unwrap(),
        Uri::Other {
            scheme: "nobodyKnowsThisScheme",
            ..
        }
    ));
}

#[test]
fn novelsc_known_but_atypical_scheme() {
    let m = valid_request("novelsc");
    assert!(matches!(
        m.request_uri().unwrap().unwrap(),
        Uri::Other {
            scheme: "soap.beep",
            ..
        }
    ));
}

#[test]
fn unksm2_unknown_schemes_in_headers() {
    let m = valid_request("unksm2");
    assert!(matches!(
        m.to().unwrap().uri,
        Uri::Other { scheme: "isbn", .. }
    ));
}

#[test]
fn bext01_proxy_require_and_require() {
    let m = valid_request("bext01");
    let req: Vec<_> = m.tokens(HeaderName::Require).map(Result::unwrap).collect();
    assert_eq!(req, ["nothingSupportsThis", "nothingSupportsThisEither"]);
    let preq: Vec<_> = m
        .tokens(HeaderName::ProxyRequire)
        .map(Result::unwrap)
        .collect();
    assert_eq!(preq, ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]);
}

#[test]
fn invut_unknown_content_type() {
    let m = valid_request("invut");
    assert_eq!(m.content_type(), Some("application/unknownformat"));
}

#[test]
fn regaut01_unknown_authorization_scheme() {
    let m = valid_request("regaut01");
    assert!(
        m.header(HeaderName::Authorization)
            .unwrap()
            .starts_with("NoOneKnowsThisScheme")
    );
}

#[test]
fn multi01_multiple_values_in_single_value_headers() {
    assert!(matches!(
        check_err("multi01"),
        ParseError::DuplicateHeader(_)
    ));
    let m = parse("multi01");
    let e = check_err("multi01");
    let resp = reject(&m, &e, "tag1").expect("a 400");
    assert_eq!(resp.status(), Some(400));
    assert!(
        resp.reason_phrase()
            .unwrap()
            .starts_with("Bad Request (more than one")
    );
}

#[test]
fn mcl01_multiple_content_length_values() {
    assert_eq!(parse_err("mcl01"), ParseError::DuplicateContentLength);
}

#[test]
fn bcast_broadcast_via() {
    let m = parse("bcast");
    check_response(&m).unwrap();
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias[1].host, Host::V4("255.255.255.255".parse().unwrap()));
}

#[test]
fn zeromf_max_forwards_zero() {
    let m = valid_request("zeromf");
    assert_eq!(m.max_forwards().unwrap(), Some(0));
}

#[test]
fn cparam01_register_contact_parameter() {
    let m = valid_request("cparam01");
    let c = m.contacts().next().unwrap().unwrap();
    // addr-spec form: the parameter belongs to the header, not the URI.
    let a = c.addr().unwrap();
    assert!(a.params.contains("unknownparam"));
    assert!(a.uri.sip().unwrap().params.is_empty());
}

#[test]
fn cparam02_register_url_parameter() {
    let m = valid_request("cparam02");
    let c = m.contacts().next().unwrap().unwrap();
    let a = c.addr().unwrap();
    assert!(a.uri.sip().unwrap().params.contains("unknownparam"));
    assert!(a.params.is_empty());
}

#[test]
fn regescrt_register_with_escaped_header() {
    let m = valid_request("regescrt");
    let c = m.contacts().next().unwrap().unwrap();
    let h = c.addr().unwrap().uri.sip().unwrap().headers.unwrap();
    assert!(h.starts_with("Route=%3Csip:sip.example.com%3E"));
    assert!(matches!(c, Contact::Addr(_)));
}

#[test]
fn sdp01_unacceptable_accept() {
    let m = valid_request("sdp01");
    assert_eq!(m.header(HeaderName::Accept), Some("text/nobodyKnowsThis"));
}

// ---- 3.4 Backward compatibility --------------------------------------------

#[test]
fn inv2543_rfc2543_syntax() {
    let m = valid_request("inv2543");
    let v = m.via().unwrap();
    assert_eq!(v.branch(), None);
    assert_eq!(m.max_forwards().unwrap(), None);
    // addr-spec form: `;user=phone` is a header parameter here.
    assert_eq!(m.to().unwrap().params.get("user"), Some(Some("phone")));
    let rr = m
        .name_addrs(HeaderName::RecordRoute)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(rr.uri.sip().unwrap().maddr(), Some("ss1.example.com"));
    assert!(m.body().starts_with(b"v=0"));
}

// ---- typed reads of the authentication and call-control headers -----------

#[test]
fn typed_auth_and_call_control_headers() {
    let text = "REFER sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr1\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@example.com>;tag=b1\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
Call-ID: refer1@192.0.2.1\r\n\
CSeq: 3 REFER\r\n\
Contact: <sip:alice@192.0.2.1>\r\n\
r: <sip:carol@example.com?Replaces=c2%40h%3Bto-tag%3Dt2%3Bfrom-tag%3Df2>\r\n\
b: <sip:alice@example.com>\r\n\
Session-Expires: 1800;refresher=uas\r\n\
Retry-After: 30\r\n\
Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"abc\", uri=\"sip:bob@192.0.2.4\", response=\"0123456789abcdef0123456789abcdef\"\r\n\
Authorization: NoOneKnowsThisScheme opaque=1\r\n\
Content-Length: 0\r\n\r\n";
    let m = Message::parse(text.as_bytes().to_vec()).unwrap();
    check_request(&m).unwrap();
    let r = m.refer_to().unwrap().unwrap();
    assert_eq!(r.replaces.unwrap().call_id, "c2@h");
    assert_eq!(m.referred_by().unwrap().unwrap().uri.user(), Some("alice"));
    assert_eq!(m.session_expires().unwrap().unwrap().seconds, 1800);
    assert_eq!(m.retry_after().unwrap().unwrap().seconds, 30);
    let c = m
        .credentials(HeaderName::ProxyAuthorization)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(c.username, "alice");
    assert!(
        m.credentials(HeaderName::Authorization)
            .next()
            .unwrap()
            .is_err()
    );
    assert!(m.replaces().unwrap().is_none());
}

#[test]
fn folded_content_length_value() {
    // Found by the differential test: a value that starts on a continuation line.
    let text = "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
Content-Length:\r\n  4\r\nTo: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\n\
Call-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\nabcdEXTRA";
    let m = Message::parse(text.as_bytes().to_vec()).unwrap();
    assert_eq!(m.body(), b"abcd");
    assert_eq!(m.header(HeaderName::ContentLength), Some("4"));
}

#[test]
fn bare_cr_in_a_header_value_is_refused() {
    // Found by fuzzing: a lone CR inside a value made a "valid" request whose
    // To could not be echoed.
    let text = "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
To: <sip:a@example.com>\r;x\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert_eq!(
        Message::parse(text.as_bytes().to_vec()).unwrap_err(),
        ParseError::BareCr
    );
}
