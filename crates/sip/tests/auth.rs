//! Digest authentication through the public API: RFC test vectors, headers
//! as real phones and servers write them, and client against server.

use sip::auth::{
    Algorithm, Challenge, ClientError, Credentials, DigestClient, DigestHash, DigestServer,
    ParseError, Qop, QopParams, RejectReason, UserSecret, Verdict, ha1, strongest_challenge,
};

const T0: u64 = 1_700_000_000;
const KEY: [u8; 32] = [0x5a; 32];
const REALM: &str = "demo.tally.local";

fn challenge(text: &str) -> Challenge {
    match Challenge::parse(text) {
        Ok(c) => c,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn credentials(text: &str) -> Credentials {
    match Credentials::parse(text) {
        Ok(c) => c,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn answer(client: &mut DigestClient, ch: &Challenge, method: &str, uri: &str) -> Credentials {
    match client.respond(ch, method, uri, "0a4f113b") {
        Ok(c) => c,
        Err(e) => panic!("{ch}: {e}"),
    }
}

mod rfc_vectors {
    use super::*;

    #[test]
    fn rfc_2617_section_3_5() {
        let ch = challenge(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        );
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert_eq!(ch.qop, [Qop::Auth, Qop::AuthInt]);
        let mut client = DigestClient::new("Mufasa", "Circle Of Life");
        let c = answer(&mut client, &ch, "GET", "/dir/index.html");
        assert_eq!(c.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(
            c.qop,
            Some(QopParams {
                qop: Qop::Auth,
                cnonce: "0a4f113b".into(),
                nc: 1
            })
        );
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );

        // The RFC's own Authorization header parses to the same credentials.
        let rfc = credentials(
            "Digest username=\"Mufasa\",\r\n realm=\"testrealm@host.com\",\r\n \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n uri=\"/dir/index.html\",\r\n \
             qop=auth,\r\n nc=00000001,\r\n cnonce=\"0a4f113b\",\r\n \
             response=\"6629fae49393a05397450978507c4ef1\",\r\n \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        );
        assert_eq!(rfc, c);
    }

    const RFC_7616_CHALLENGE_SHA256: &str = "Digest\r\n    realm=\"http-auth@example.org\",\r\n    qop=\"auth, auth-int\",\r\n    algorithm=SHA-256,\r\n    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    const RFC_7616_CHALLENGE_MD5: &str = "Digest\r\n    realm=\"http-auth@example.org\",\r\n    qop=\"auth, auth-int\",\r\n    algorithm=MD5,\r\n    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    const RFC_7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc_7616_answer(ch: &Challenge) -> Credentials {
        let mut client = DigestClient::new("Mufasa", "Circle of Life");
        match client.respond(ch, "GET", "/dir/index.html", RFC_7616_CNONCE) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn rfc_7616_section_3_9_1_md5() {
        let ch = challenge(RFC_7616_CHALLENGE_MD5);
        let c = rfc_7616_answer(&ch);
        assert_eq!(c.response, "8ca523f5e9506fed4657c9700eebdbec");
        let rfc = credentials(
            "Digest username=\"Mufasa\",\r\n    realm=\"http-auth@example.org\",\r\n    \
             uri=\"/dir/index.html\",\r\n    algorithm=MD5,\r\n    \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n    nc=00000001,\r\n    \
             cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n    qop=auth,\r\n    \
             response=\"8ca523f5e9506fed4657c9700eebdbec\",\r\n    \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        );
        assert_eq!(rfc, c);
    }

    #[test]
    fn rfc_7616_section_3_9_1_sha256() {
        let ch = challenge(RFC_7616_CHALLENGE_SHA256);
        assert_eq!(ch.realm, "http-auth@example.org");
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert_eq!(ch.qop, [Qop::Auth, Qop::AuthInt]);
        let c = rfc_7616_answer(&ch);
        assert_eq!(
            c.response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.to_string(), credentials(&c.to_string()).to_string());
    }

    #[test]
    fn rfc_7616_offers_sha256_and_md5_client_picks_sha256() {
        // RFC 7616 §3.9.1 sends the SHA-256 challenge first; RFC 8760 has
        // the client prefer it whatever the order.
        for order in [
            [RFC_7616_CHALLENGE_SHA256, RFC_7616_CHALLENGE_MD5],
            [RFC_7616_CHALLENGE_MD5, RFC_7616_CHALLENGE_SHA256],
        ] {
            let offered: Vec<Challenge> = order.iter().map(|t| challenge(t)).collect();
            let picked = strongest_challenge(&offered).map(|c| c.algorithm);
            assert_eq!(picked, Some(Algorithm::Sha256));
        }
    }

    #[test]
    fn stored_ha1_matches_password() {
        assert_eq!(
            ha1(
                DigestHash::Md5,
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life"
            ),
            "939e7578ed9e3c518a452acee763bce9"
        );
        assert_eq!(
            ha1(DigestHash::Sha256, "u", "r", "p").len(),
            DigestHash::Sha256.hex_len()
        );
    }
}

mod parsing {
    use super::*;

    const RESP_MD5: &str = "d6bcbe2ca6bbc8ff1b7b62d1c8e2a0b4";

    #[test]
    fn linphone_register() {
        let c = credentials(&format!(
            "Digest realm=\"demo.tally.local\", nonce=\"Zr2hYGa9oDS3e4wC1S3W9q9hZr+3/tUW\", \
             algorithm=MD5, opaque=\"+GNywA==\", username=\"101\",  uri=\"sip:demo.tally.local\", \
             response=\"{RESP_MD5}\", cnonce=\"4Ka6kqbFmCbgBjzX\", nc=00000001, qop=auth"
        ));
        assert_eq!(c.username, "101");
        assert_eq!(c.realm, "demo.tally.local");
        assert_eq!(c.nonce, "Zr2hYGa9oDS3e4wC1S3W9q9hZr+3/tUW");
        assert_eq!(c.uri, "sip:demo.tally.local");
        assert_eq!(c.response, RESP_MD5);
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.opaque.as_deref(), Some("+GNywA=="));
        assert_eq!(
            c.qop,
            Some(QopParams {
                qop: Qop::Auth,
                cnonce: "4Ka6kqbFmCbgBjzX".into(),
                nc: 1
            })
        );
    }

    #[test]
    fn zoiper_no_spaces() {
        let c = credentials(&format!(
            "Digest username=\"101\",realm=\"demo.tally.local\",nonce=\"abc123\",\
             uri=\"sip:demo.tally.local;transport=UDP\",response=\"{RESP_MD5}\",\
             cnonce=\"b8d6b0e4\",nc=0000002a,qop=auth,algorithm=MD5"
        ));
        assert_eq!(c.uri, "sip:demo.tally.local;transport=UDP");
        assert_eq!(c.qop.map(|q| q.nc), Some(42));
    }

    #[test]
    fn sipp_invite_with_uppercase_response() {
        let c = credentials(
            "Digest username=\"sipp\",realm=\"demo.tally.local\",cnonce=\"6b8b4567\",\
             nc=00000001,qop=auth,uri=\"sip:102@127.0.0.1:5060\",nonce=\"n\",\
             response=\"D6BCBE2CA6BBC8FF1B7B62D1C8E2A0B4\",algorithm=MD5",
        );
        assert_eq!(c.response, RESP_MD5);
    }

    #[test]
    fn asterisk_pjsip_challenge_lowercase_algorithm() {
        let ch = challenge(
            "Digest realm=\"asterisk\",nonce=\"1700000000/3e6f4c3a2b1d0e9f8a7b6c5d4e3f2a1b\",\
             opaque=\"5b8e3c7a1d2f4e6b\",algorithm=md5,qop=\"auth\"",
        );
        assert_eq!(ch.realm, "asterisk");
        assert_eq!(ch.nonce, "1700000000/3e6f4c3a2b1d0e9f8a7b6c5d4e3f2a1b");
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert_eq!(ch.qop, [Qop::Auth]);
        assert!(!ch.stale);
    }

    #[test]
    fn rfc_2069_challenge_defaults() {
        let ch = challenge(r#"Digest realm="demo.tally.local", nonce="ZVx3JmVcdfrKj0y7""#);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert!(ch.qop.is_empty());
        assert!(ch.domain.is_empty());
        assert_eq!(ch.opaque, None);
    }

    #[test]
    fn challenge_with_every_field() {
        let ch = challenge(
            "DIGEST REALM=\"pbx\" , DOMAIN=\"sip:pbx sip:pbx2\"\t,NONCE = \"n\", \
             stale=TRUE, algorithm=SHA-256-sess, qop=\"auth-int, auth, future\", \
             userhash=true, charset=UTF-8, x-vendor=\"ignored\"",
        );
        assert_eq!(
            ch,
            Challenge {
                realm: "pbx".into(),
                domain: vec!["sip:pbx".into(), "sip:pbx2".into()],
                nonce: "n".into(),
                opaque: None,
                stale: true,
                algorithm: Algorithm::Sha256Sess,
                qop: vec![Qop::AuthInt, Qop::Auth],
            }
        );
    }

    #[test]
    fn escaped_quotes_in_values() {
        let c = credentials(&format!(
            r#"Digest username="ali\"ce\\", realm="r", nonce="n", uri="sip:r", response="{RESP_MD5}""#
        ));
        assert_eq!(c.username, r#"ali"ce\"#);
        let again = credentials(&c.to_string());
        assert_eq!(again, c);
        assert!(c.to_string().contains(r#"username="ali\"ce\\""#));
    }

    #[test]
    fn tolerant_of_quoted_tokens() {
        // Some UAs quote what the RFC wants bare.
        let c = credentials(&format!(
            "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"{RESP_MD5}\", \
             algorithm=\"MD5\", qop=\"auth\", nc=\"00000003\", cnonce=\"c\""
        ));
        assert_eq!(c.qop.map(|q| (q.qop, q.nc)), Some((Qop::Auth, 3)));
    }

    #[test]
    fn serialization_quotes_as_the_rfc_requires() {
        let ch = Challenge {
            realm: "pbx".into(),
            domain: vec!["sip:pbx".into()],
            nonce: "abc".into(),
            opaque: Some("op".into()),
            stale: true,
            algorithm: Algorithm::Sha256,
            qop: vec![Qop::Auth],
        };
        assert_eq!(
            ch.to_string(),
            r#"Digest realm="pbx", domain="sip:pbx", nonce="abc", opaque="op", stale=true, algorithm=SHA-256, qop="auth""#
        );
        assert_eq!(challenge(&ch.to_string()), ch);

        let c = Credentials {
            username: "101".into(),
            realm: "pbx".into(),
            nonce: "abc".into(),
            uri: "sip:pbx".into(),
            response: RESP_MD5.into(),
            algorithm: Algorithm::Md5,
            opaque: Some("op".into()),
            qop: Some(QopParams {
                qop: Qop::Auth,
                cnonce: "xyz".into(),
                nc: 0x1f,
            }),
        };
        assert_eq!(
            c.to_string(),
            format!(
                r#"Digest username="101", realm="pbx", nonce="abc", uri="sip:pbx", response="{RESP_MD5}", algorithm=MD5, cnonce="xyz", opaque="op", qop=auth, nc=0000001f"#
            )
        );
        assert_eq!(credentials(&c.to_string()), c);

        let no_qop = Credentials {
            qop: None,
            opaque: None,
            ..c
        };
        assert_eq!(
            no_qop.to_string(),
            format!(
                r#"Digest username="101", realm="pbx", nonce="abc", uri="sip:pbx", response="{RESP_MD5}", algorithm=MD5"#
            )
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let full = [
            ("username", "username=\"u\""),
            ("realm", "realm=\"r\""),
            ("nonce", "nonce=\"n\""),
            ("uri", "uri=\"sip:r\""),
            ("response", "response=\"d6bcbe2ca6bbc8ff1b7b62d1c8e2a0b4\""),
            ("qop", "qop=auth"),
            ("cnonce", "cnonce=\"c\""),
            ("nc", "nc=00000001"),
        ];
        for (missing, _) in full {
            let rest: Vec<&str> = full
                .iter()
                .filter(|(n, _)| *n != missing)
                .map(|(_, p)| *p)
                .collect();
            let header = format!("Digest {}", rest.join(", "));
            let got = Credentials::parse(&header);
            if missing == "qop" {
                // Without qop, cnonce and nc are ignored, not an error.
                assert_eq!(got.map(|c| c.qop), Ok(None));
            } else {
                assert_eq!(got, Err(ParseError::MissingParam(missing)), "{header}");
            }
        }
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(ParseError::MissingParam("realm"))
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r\""),
            Err(ParseError::MissingParam("nonce"))
        );
        assert_eq!(
            Challenge::parse("Digest"),
            Err(ParseError::MissingParam("realm"))
        );
        assert_eq!(
            Credentials::parse(
                "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", \
                 response=\"d6bcbe2ca6bbc8ff1b7b62d1c8e2a0b4\", algorithm=MD5-sess"
            ),
            Err(ParseError::MissingParam("qop"))
        );
    }

    #[test]
    fn duplicated_fields() {
        assert_eq!(
            Challenge::parse(r#"Digest realm="a", nonce="n", REALM="b""#),
            Err(ParseError::DuplicateParam("REALM".into()))
        );
        assert_eq!(
            Credentials::parse(&format!(
                r#"Digest username="u", realm="r", nonce="n", uri="u", response="{RESP_MD5}", nc=00000001, nc=00000002, qop=auth, cnonce="c""#
            )),
            Err(ParseError::DuplicateParam("nc".into()))
        );
    }

    #[test]
    fn invalid_values() {
        let base = "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:r\"";
        for (extra, name, value) in [
            (
                format!("response=\"{RESP_MD5}\", qop=auth, cnonce=\"c\", nc=1"),
                "nc",
                "1",
            ),
            (
                format!("response=\"{RESP_MD5}\", qop=auth, cnonce=\"c\", nc=0000000A"),
                "nc",
                "0000000A",
            ),
            (
                format!("response=\"{RESP_MD5}\", qop=auth-conf, cnonce=\"c\", nc=00000001"),
                "qop",
                "auth-conf",
            ),
            ("response=\"xyz\"".to_string(), "response", "xyz"),
            (
                // An MD5-length digest claimed to be SHA-256.
                format!("response=\"{RESP_MD5}\", algorithm=SHA-256"),
                "response",
                RESP_MD5,
            ),
        ] {
            let header = format!("{base}, {extra}");
            assert_eq!(
                Credentials::parse(&header),
                Err(ParseError::InvalidValue {
                    name,
                    value: value.into()
                }),
                "{header}"
            );
        }
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", stale=maybe"#),
            Err(ParseError::InvalidValue {
                name: "stale",
                value: "maybe".into()
            })
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-conf""#),
            Err(ParseError::InvalidValue {
                name: "qop",
                value: "auth-conf".into()
            })
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#),
            Err(ParseError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="r""#),
            Err(ParseError::UnsupportedScheme("Basic".into()))
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for input in [
            "",
            " ",
            "Digest",
            "Digest ,,,",
            "Digest realm",
            "Digest realm=",
            "Digest realm=\"",
            "Digest realm=\"\\",
            "Digest realm==\"r\"",
            "Digest realm=\"r\" nonce=\"n\"",
            "Digest realm=<sip:x>",
            "Digest \"realm\"=\"r\"",
            "Digest realm=\"r\"\r\nnonce=\"n\"",
            "Digest\0realm=\"r\"",
            "\u{feff}Digest realm=\"r\", nonce=\"n\"",
            "Digest realm=\"r\", nonce=\"n\"\u{0}",
            "Digest realm=\"r\"; nonce=\"n\"",
            "Digest réalm=\"r\", nonce=\"n\"",
        ] {
            assert!(Challenge::parse(input).is_err(), "{input:?}");
            assert!(Credentials::parse(input).is_err(), "{input:?}");
        }
    }

    /// Deterministic mutations of valid headers: byte flips, truncations,
    /// splices. Nothing may panic; whatever parses must re-serialize to text
    /// that parses to the same value.
    #[test]
    fn mutated_headers_never_panic() {
        let seeds = [
            format!(
                "Digest username=\"101\",realm=\"demo.tally.local\",nonce=\"abc\",\
                 uri=\"sip:demo.tally.local\",response=\"{RESP_MD5}\",algorithm=MD5,\
                 cnonce=\"c\\\"x\",qop=auth,nc=00000001"
            ),
            "Digest realm=\"r\", domain=\"sip:a sip:b\", nonce=\"n\", opaque=\"o\", \
             stale=true, algorithm=SHA-256, qop=\"auth,auth-int\""
                .to_string(),
        ];
        let alphabet = b"\"\\,= \t\r\nDdigestrealmnoncequp0123456789abcdef-\x00\xff";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let seed = seeds[(next() % 2) as usize].as_bytes();
            let mut bytes = seed.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let pos = (next() as usize) % (bytes.len() + 1);
                match next() % 3 {
                    0 if pos < bytes.len() => {
                        bytes[pos] = alphabet[(next() as usize) % alphabet.len()];
                    }
                    1 => bytes.truncate(pos),
                    _ => bytes.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(ch) = Challenge::parse(&text) {
                assert_eq!(challenge(&ch.to_string()), ch, "{text:?}");
            }
            if let Ok(c) = Credentials::parse(&text) {
                assert_eq!(credentials(&c.to_string()), c, "{text:?}");
            }
        }
    }

    #[test]
    fn algorithm_and_qop_spellings() {
        for (text, alg) in [
            ("MD5", Algorithm::Md5),
            ("md5-SESS", Algorithm::Md5Sess),
            ("SHA-256", Algorithm::Sha256),
            ("sha-256-sess", Algorithm::Sha256Sess),
        ] {
            assert_eq!(text.parse::<Algorithm>(), Ok(alg));
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
        }
        assert_eq!(Algorithm::Sha256Sess.to_string(), "SHA-256-sess");
        assert_eq!(Qop::AuthInt.to_string(), "auth-int");
    }
}

mod server {
    use super::*;

    fn server() -> DigestServer {
        DigestServer::new(REALM, KEY)
    }

    /// Challenge → header text → client → header text → verify, as on the
    /// wire.
    fn round_trip(
        server: &mut DigestServer,
        client: &mut DigestClient,
        ch: &Challenge,
        now: u64,
        secret: UserSecret<'_>,
    ) -> Verdict {
        let ch = challenge(&ch.to_string());
        let c = answer(client, &ch, "REGISTER", "sip:demo.tally.local");
        let c = credentials(&c.to_string());
        server.verify(now, "REGISTER", &c, secret)
    }

    fn without_qop(mut ch: Challenge) -> Challenge {
        ch.qop.clear();
        ch
    }

    #[test]
    fn challenge_header() {
        let mut s = server();
        let ch = s.challenge(T0, Algorithm::Sha256, false);
        assert_eq!(ch.realm, REALM);
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert_eq!(ch.qop, [Qop::Auth]);
        assert!(!ch.stale);
        let text = ch.to_string();
        assert!(text.starts_with("Digest realm=\"demo.tally.local\", nonce=\""));
        assert!(text.ends_with(", algorithm=SHA-256, qop=\"auth\""));
        assert!(
            s.challenge(T0, Algorithm::Md5, true)
                .to_string()
                .contains(", stale=true, ")
        );
    }

    #[test]
    fn every_algorithm_with_qop_and_every_secret_form() {
        for alg in [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ] {
            let stored = ha1(alg.hash(), "101", REALM, "s3cret");
            let secrets = [
                UserSecret::Password("s3cret"),
                match alg.hash() {
                    DigestHash::Md5 => UserSecret::Md5Ha1(&stored),
                    DigestHash::Sha256 => UserSecret::Sha256Ha1(&stored),
                },
            ];
            for secret in secrets {
                let mut s = server();
                let mut client = DigestClient::new("101", "s3cret");
                let ch = s.challenge(T0, alg, false);
                assert_eq!(
                    round_trip(&mut s, &mut client, &ch, T0 + 1, secret),
                    Verdict::Ok,
                    "{alg} {secret:?}"
                );
            }
        }
    }

    #[test]
    fn without_qop_is_refused_by_default() {
        let mut s = server();
        let mut client = DigestClient::new("101", "s3cret");
        let ch = without_qop(s.challenge(T0, Algorithm::Md5, false));
        let c = answer(&mut client, &ch, "INVITE", "sip:102@demo.tally.local");
        assert_eq!(c.qop, None);
        let c = credentials(&c.to_string());
        // Even with the right password: the answer could be a replay.
        assert_eq!(
            s.verify(T0, "INVITE", &c, UserSecret::Password("s3cret")),
            Verdict::Reject(RejectReason::MissingQop)
        );
        assert_eq!(s.tracked_nonces(), 0);
    }

    #[test]
    fn without_qop_when_allowed_each_nonce_answers_once() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let mut s = server().with_qop_required(false);
            let mut client = DigestClient::new("101", "s3cret");
            let ch = without_qop(s.challenge(T0, alg, false));
            let c = answer(&mut client, &ch, "INVITE", "sip:102@demo.tally.local");
            assert_eq!(c.qop, None);
            assert!(!c.to_string().contains("nc="));
            let c = credentials(&c.to_string());
            let secret = UserSecret::Password("s3cret");
            // A wrong answer is refused and burns nothing.
            let mut forged = c.clone();
            forged.response = "0".repeat(alg.hash().hex_len());
            assert_eq!(
                s.verify(T0, "INVITE", &forged, secret),
                Verdict::Reject(RejectReason::WrongResponse)
            );
            assert_eq!(s.verify(T0, "INVITE", &c, secret), Verdict::Ok, "{alg}");
            assert_eq!(s.tracked_nonces(), 1);
            // The same answer again (a replay, or a phone reusing its nonce)
            // is sent for a fresh nonce, never accepted.
            assert_eq!(s.verify(T0 + 1, "INVITE", &c, secret), Verdict::Stale);
            // Nor can the nonce be answered with qop afterwards.
            let mut with_qop = DigestClient::new("101", "s3cret");
            let again = answer(
                &mut with_qop,
                &s.challenge(T0, alg, false),
                "INVITE",
                "sip:102@demo.tally.local",
            );
            assert_eq!(s.verify(T0 + 1, "INVITE", &again, secret), Verdict::Ok);
            let mut reuse = again.clone();
            reuse.nonce = c.nonce.clone();
            assert_ne!(s.verify(T0 + 1, "INVITE", &reuse, secret), Verdict::Ok);
        }
    }

    #[test]
    fn wrong_password_is_rejected() {
        for alg in [Algorithm::Md5, Algorithm::Sha256Sess] {
            let mut s = server();
            let mut client = DigestClient::new("101", "guess");
            let ch = s.challenge(T0, alg, false);
            assert_eq!(
                round_trip(&mut s, &mut client, &ch, T0, UserSecret::Password("s3cret")),
                Verdict::Reject(RejectReason::WrongResponse)
            );
        }
    }

    #[test]
    fn method_and_uri_are_covered_by_the_digest() {
        let mut s = server();
        let mut client = DigestClient::new("101", "s3cret");
        let ch = s.challenge(T0, Algorithm::Sha256, false);
        let c = answer(&mut client, &ch, "REGISTER", "sip:demo.tally.local");
        let secret = UserSecret::Password("s3cret");
        assert_eq!(
            s.verify(T0, "INVITE", &c, secret),
            Verdict::Reject(RejectReason::WrongResponse)
        );
        let moved = Credentials {
            uri: "sip:evil.example".into(),
            ..c.clone()
        };
        assert_eq!(
            s.verify(T0, "REGISTER", &moved, secret),
            Verdict::Reject(RejectReason::WrongResponse)
        );
        assert_eq!(s.verify(T0, "REGISTER", &c, secret), Verdict::Ok);
    }

    #[test]
    fn expired_nonce_is_stale_only_with_the_right_password() {
        let mut s = server().with_nonce_lifetime_secs(60);
        let ch = s.challenge(T0, Algorithm::Sha256, false);
        let mut good = DigestClient::new("101", "s3cret");
        let mut bad = DigestClient::new("101", "guess");
        let secret = UserSecret::Password("s3cret");
        assert_eq!(
            round_trip(&mut s, &mut good, &ch, T0 + 59, secret),
            Verdict::Ok
        );
        assert_eq!(
            round_trip(&mut s, &mut good, &ch, T0 + 60, secret),
            Verdict::Stale
        );
        assert_eq!(
            round_trip(&mut s, &mut bad, &ch, T0 + 60, secret),
            Verdict::Reject(RejectReason::WrongResponse)
        );
        // The caller re-challenges with stale=true and the phone retries.
        let fresh = s.challenge(T0 + 60, Algorithm::Sha256, true);
        assert!(fresh.stale);
        assert_eq!(
            round_trip(&mut s, &mut good, &fresh, T0 + 61, secret),
            Verdict::Ok
        );
    }

    #[test]
    fn nonce_from_before_a_clock_step_back_is_fresh() {
        let mut s = server();
        let mut client = DigestClient::new("101", "s3cret");
        let ch = s.challenge(T0, Algorithm::Md5, false);
        assert_eq!(
            round_trip(
                &mut s,
                &mut client,
                &ch,
                T0 - 5,
                UserSecret::Password("s3cret")
            ),
            Verdict::Ok
        );
    }

    #[test]
    fn forged_nonces_are_rejected() {
        let mut s = server();
        let ch = s.challenge(T0, Algorithm::Md5, false);
        let secret = UserSecret::Password("s3cret");
        // Every single-bit flip of every hex digit; the client computes a
        // correct response over the forged nonce, as an attacker would.
        for i in 0..ch.nonce.len() {
            for bit in [1u8, 2, 4, 8] {
                let mut bytes = ch.nonce.clone().into_bytes();
                let digit = (bytes[i] as char).to_digit(16).unwrap_or(0) as u8 ^ bit;
                bytes[i] = char::from_digit(u32::from(digit), 16).map_or(b'0', |c| c as u8);
                let Ok(nonce) = String::from_utf8(bytes) else {
                    continue;
                };
                if nonce == ch.nonce {
                    continue;
                }
                let forged = Challenge {
                    nonce,
                    ..ch.clone()
                };
                let mut client = DigestClient::new("101", "s3cret");
                let c = answer(&mut client, &forged, "REGISTER", "sip:demo.tally.local");
                assert_eq!(
                    s.verify(T0, "REGISTER", &c, secret),
                    Verdict::Reject(RejectReason::InvalidNonce),
                    "digit {i} bit {bit}"
                );
            }
        }
        // A nonce from a server with another key, and one from a stranger.
        let mut other = DigestServer::new(REALM, [0xa5; 32]);
        for forged in [
            other.challenge(T0, Algorithm::Md5, false),
            challenge(
                r#"Digest realm="demo.tally.local", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093""#,
            ),
        ] {
            let mut client = DigestClient::new("101", "s3cret");
            let c = answer(&mut client, &forged, "REGISTER", "sip:demo.tally.local");
            // The stranger's challenge has no qop, refused for that first
            // unless the server takes legacy answers.
            let mut legacy = server().with_qop_required(false);
            assert_eq!(
                legacy.verify(T0, "REGISTER", &c, secret),
                Verdict::Reject(RejectReason::InvalidNonce)
            );
            if c.qop.is_some() {
                assert_eq!(
                    s.verify(T0, "REGISTER", &c, secret),
                    Verdict::Reject(RejectReason::InvalidNonce)
                );
            }
        }
    }

    #[test]
    fn nonce_of_another_realm_or_algorithm() {
        let mut tenant_a = DigestServer::new("a.tally.local", KEY);
        let mut tenant_b = DigestServer::new("b.tally.local", KEY);
        let secret = UserSecret::Password("s3cret");
        let mut client = DigestClient::new("101", "s3cret");

        // Credentials for realm a presented to realm b.
        let ch = tenant_a.challenge(T0, Algorithm::Md5, false);
        let c = answer(&mut client, &ch, "REGISTER", "sip:a.tally.local");
        assert_eq!(
            tenant_b.verify(T0, "REGISTER", &c, secret),
            Verdict::Reject(RejectReason::RealmMismatch)
        );
        // Realm a's nonce relabelled with realm b: the MAC binds the realm.
        let relabelled = Challenge {
            realm: "b.tally.local".into(),
            ..ch
        };
        let c = answer(&mut client, &relabelled, "REGISTER", "sip:b.tally.local");
        assert_eq!(
            tenant_b.verify(T0, "REGISTER", &c, secret),
            Verdict::Reject(RejectReason::InvalidNonce)
        );
        // A SHA-256 nonce answered with MD5 (a downgrade).
        let ch = tenant_a.challenge(T0, Algorithm::Sha256, false);
        let downgraded = Challenge {
            algorithm: Algorithm::Md5,
            ..ch
        };
        let c = answer(&mut client, &downgraded, "REGISTER", "sip:a.tally.local");
        assert_eq!(
            tenant_a.verify(T0, "REGISTER", &c, secret),
            Verdict::Reject(RejectReason::AlgorithmMismatch)
        );
    }

    #[test]
    fn nonce_count_must_increase() {
        let mut s = server();
        let ch = s.challenge(T0, Algorithm::Sha256, false);
        let mut client = DigestClient::new("101", "s3cret");
        let secret = UserSecret::Password("s3cret");
        let first = answer(&mut client, &ch, "REGISTER", "sip:demo.tally.local");
        let second = answer(&mut client, &ch, "REGISTER", "sip:demo.tally.local");
        let third = answer(&mut client, &ch, "REGISTER", "sip:demo.tally.local");
        assert_eq!(
            [&first, &second, &third].map(|c| c.qop.as_ref().map(|q| q.nc)),
            [Some(1), Some(2), Some(3)]
        );
        assert_eq!(s.verify(T0, "REGISTER", &first, secret), Verdict::Ok);
        // A captured request replayed.
        assert_eq!(
            s.verify(T0 + 1, "REGISTER", &first, secret),
            Verdict::Reject(RejectReason::ReplayedNonceCount)
        );
        // Gaps are fine (a lost request), going back is not.
        assert_eq!(s.verify(T0 + 2, "REGISTER", &third, secret), Verdict::Ok);
        assert_eq!(
            s.verify(T0 + 3, "REGISTER", &second, secret),
            Verdict::Reject(RejectReason::ReplayedNonceCount)
        );
        assert_eq!(s.tracked_nonces(), 1);
    }

    #[test]
    fn a_failed_attempt_does_not_burn_the_count() {
        let mut s = server();
        let ch = s.challenge(T0, Algorithm::Md5, false);
        let mut good = DigestClient::new("101", "s3cret");
        let mut bad = DigestClient::new("101", "guess");
        let secret = UserSecret::Password("s3cret");
        let attacker = answer(&mut bad, &ch, "REGISTER", "sip:demo.tally.local");
        assert_eq!(
            s.verify(T0, "REGISTER", &attacker, secret),
            Verdict::Reject(RejectReason::WrongResponse)
        );
        assert_eq!(s.tracked_nonces(), 0);
        let c = answer(&mut good, &ch, "REGISTER", "sip:demo.tally.local");
        assert_eq!(s.verify(T0, "REGISTER", &c, secret), Verdict::Ok);
    }

    #[test]
    fn unsupported_qop_and_secret_mismatches() {
        let mut s = server();
        let secret = UserSecret::Password("s3cret");
        let ch = s.challenge(T0, Algorithm::Md5, false);
        let mut client = DigestClient::new("101", "s3cret");
        let c = answer(&mut client, &ch, "REGISTER", "sip:demo.tally.local");

        let mut int = c.clone();
        if let Some(q) = &mut int.qop {
            q.qop = Qop::AuthInt;
        }
        assert_eq!(
            s.verify(T0, "REGISTER", &int, secret),
            Verdict::Reject(RejectReason::UnsupportedQop)
        );

        let sha_ha1 = ha1(DigestHash::Sha256, "101", REALM, "s3cret");
        assert_eq!(
            s.verify(T0, "REGISTER", &c, UserSecret::Sha256Ha1(&sha_ha1)),
            Verdict::Reject(RejectReason::Ha1AlgorithmMismatch)
        );
        assert_eq!(
            s.verify(T0, "REGISTER", &c, UserSecret::Md5Ha1("not hex")),
            Verdict::Reject(RejectReason::InvalidStoredHa1)
        );
        let upper = ha1(DigestHash::Md5, "101", REALM, "s3cret").to_ascii_uppercase();
        assert_eq!(
            s.verify(T0, "REGISTER", &c, UserSecret::Md5Ha1(&upper)),
            Verdict::Ok
        );

        let sess = s.challenge(T0, Algorithm::Md5Sess, false);
        let mut c = answer(&mut client, &sess, "REGISTER", "sip:demo.tally.local");
        c.qop = None;
        assert_eq!(
            s.verify(T0, "REGISTER", &c, secret),
            Verdict::Reject(RejectReason::SessionWithoutQop)
        );
    }

    #[test]
    fn table_stays_bounded_when_flooded() {
        const CAP: usize = 100;
        let mut s = server().with_max_tracked_nonces(CAP);
        let secret = UserSecret::Password("s3cret");
        let mut client = DigestClient::new("101", "s3cret");
        let mut first = None;
        for i in 0..2_000u64 {
            let now = T0 + i / 20;
            let ch = s.challenge(now, Algorithm::Md5, false);
            let c = answer(&mut client, &ch, "REGISTER", "sip:demo.tally.local");
            assert_eq!(s.verify(now, "REGISTER", &c, secret), Verdict::Ok);
            assert!(s.tracked_nonces() <= CAP, "{} tracked", s.tracked_nonces());
            first.get_or_insert((ch, c));
        }
        assert_eq!(s.tracked_nonces(), CAP);

        // The first nonce is still live (100 s old) but was evicted: its
        // captured request must not replay, and its owner is sent for a
        // fresh nonce rather than refused.
        let Some((ch, c)) = first else {
            panic!("no requests")
        };
        let now = T0 + 100;
        assert_eq!(
            s.verify(now, "REGISTER", &c, secret),
            Verdict::Stale,
            "evicted nonce must not verify"
        );
        let mut owner = DigestClient::new("101", "s3cret");
        let next = answer(&mut owner, &ch, "REGISTER", "sip:demo.tally.local");
        assert_eq!(s.verify(now, "REGISTER", &next, secret), Verdict::Stale);
    }

    #[test]
    fn expired_entries_are_dropped() {
        let mut s = server().with_nonce_lifetime_secs(30);
        let secret = UserSecret::Password("s3cret");
        let mut client = DigestClient::new("101", "s3cret");
        for i in 0..50 {
            let ch = s.challenge(T0 + i, Algorithm::Sha256, false);
            let c = answer(&mut client, &ch, "REGISTER", "sip:demo.tally.local");
            assert_eq!(s.verify(T0 + i, "REGISTER", &c, secret), Verdict::Ok);
        }
        assert_eq!(s.tracked_nonces(), 30);
        let _ = s.challenge(T0 + 1_000, Algorithm::Sha256, false);
        assert_eq!(s.tracked_nonces(), 0);
    }

    #[test]
    fn request_uri_helper() {
        let c = Credentials {
            username: "101".into(),
            realm: REALM.into(),
            nonce: "n".into(),
            uri: "sip:101@Demo.Tally.Local:5060;transport=udp".into(),
            response: String::new(),
            algorithm: Algorithm::Md5,
            opaque: None,
            qop: None,
        };
        assert!(c.uri_matches("sip:101@Demo.Tally.Local:5060;transport=udp"));
        assert!(c.uri_matches("SIP:101@demo.tally.local:5060;transport=udp"));
        assert!(!c.uri_matches("sip:102@demo.tally.local:5060;transport=udp"));
        assert!(!c.uri_matches("sip:101@demo.tally.local;transport=udp"));
        assert!(!c.uri_matches("sip:101@demo.tally.local:5060;transport=tcp"));
        assert!(!c.uri_matches("sips:101@demo.tally.local:5060;transport=udp"));
    }
}

mod client {
    use super::*;

    fn md5_challenge(realm: &str, nonce: &str) -> Challenge {
        challenge(&format!(
            r#"Digest realm="{realm}", nonce="{nonce}", algorithm=MD5, qop="auth""#
        ))
    }

    fn nc(c: &Credentials) -> Option<u32> {
        c.qop.as_ref().map(|q| q.nc)
    }

    #[test]
    fn nonce_count_per_nonce() {
        let mut client = DigestClient::new("trunk1", "pw");
        let a = md5_challenge("carrier.example", "n1");
        let b = md5_challenge("carrier.example", "n2");
        let other = md5_challenge("other.example", "n1");
        let uri = "sip:carrier.example";
        assert_eq!(nc(&answer(&mut client, &a, "REGISTER", uri)), Some(1));
        assert_eq!(nc(&answer(&mut client, &a, "INVITE", uri)), Some(2));
        assert_eq!(nc(&answer(&mut client, &other, "INVITE", uri)), Some(1));
        assert_eq!(nc(&answer(&mut client, &a, "INVITE", uri)), Some(3));
        // A new nonce for the realm restarts the count.
        assert_eq!(nc(&answer(&mut client, &b, "REGISTER", uri)), Some(1));
        assert_eq!(nc(&answer(&mut client, &a, "REGISTER", uri)), Some(1));
    }

    #[test]
    fn credentials_serialize_for_the_wire() {
        let mut client = DigestClient::new("trunk1", "pw");
        let ch = challenge(
            r#"Digest realm="carrier.example", nonce="n1", opaque="o", algorithm=SHA-256, qop="auth""#,
        );
        let c = answer(&mut client, &ch, "REGISTER", "sip:carrier.example");
        let text = c.to_string();
        assert!(text.starts_with(
            "Digest username=\"trunk1\", realm=\"carrier.example\", nonce=\"n1\", \
             uri=\"sip:carrier.example\", response=\""
        ));
        assert!(text.ends_with(
            "\", algorithm=SHA-256, cnonce=\"0a4f113b\", opaque=\"o\", qop=auth, nc=00000001"
        ));
    }

    #[test]
    fn refusals() {
        let mut client = DigestClient::new("trunk1", "pw");
        let int_only = challenge(r#"Digest realm="r", nonce="n", qop="auth-int""#);
        assert_eq!(
            client.respond(&int_only, "INVITE", "sip:r", "c"),
            Err(ClientError::UnsupportedQop)
        );
        let sess = challenge(r#"Digest realm="r", nonce="n", algorithm=SHA-256-sess"#);
        assert_eq!(
            client.respond(&sess, "INVITE", "sip:r", "c"),
            Err(ClientError::SessionWithoutQop(Algorithm::Sha256Sess))
        );
        let ok = md5_challenge("r", "n");
        assert_eq!(
            client.respond(&ok, "INVITE", "sip:r", ""),
            Err(ClientError::EmptyCnonce)
        );
        assert_eq!(
            client.respond(&ok, "INVITE", "sip:r\r\nX-Evil: 1", "c"),
            Err(ClientError::ControlCharacter("uri"))
        );
        assert_eq!(
            DigestClient::new("trunk\n1", "pw").respond(&ok, "INVITE", "sip:r", "c"),
            Err(ClientError::ControlCharacter("username"))
        );
        // Refusals do not consume a count.
        assert_eq!(nc(&answer(&mut client, &ok, "INVITE", "sip:r")), Some(1));
    }

    #[test]
    fn strongest_challenge_choice() {
        let md5 = md5_challenge("r", "m");
        let sha = challenge(r#"Digest realm="r", nonce="s", algorithm=SHA-256, qop="auth""#);
        let sha_int_only =
            challenge(r#"Digest realm="r", nonce="i", algorithm=SHA-256, qop="auth-int""#);
        let sha_sess =
            challenge(r#"Digest realm="r", nonce="t", algorithm=SHA-256-sess, qop="auth""#);
        let pick = |cs: &[Challenge]| strongest_challenge(cs).map(|c| c.nonce.clone());
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(std::slice::from_ref(&md5)), Some("m".into()));
        assert_eq!(pick(&[md5.clone(), sha.clone()]), Some("s".into()));
        assert_eq!(pick(&[sha_int_only.clone(), md5.clone()]), Some("m".into()));
        assert_eq!(pick(&[sha_int_only]), None);
        // Equals keep the server's order.
        assert_eq!(pick(&[sha_sess.clone(), sha.clone()]), Some("t".into()));
        assert_eq!(pick(&[sha, sha_sess, md5]), Some("s".into()));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let client = DigestClient::new("trunk1", "hunter2");
        assert!(!format!("{client:?}").contains("hunter2"));
        assert!(!format!("{:?}", UserSecret::Password("hunter2")).contains("hunter2"));
        let server = DigestServer::new(REALM, KEY);
        assert!(format!("{server:?}").contains(REALM));
    }
}
