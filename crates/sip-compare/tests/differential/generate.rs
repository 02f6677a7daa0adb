//! A small deterministic generator of valid SIP messages, each with the
//! values a correct parser must read from it.
//!
//! Every choice it makes is one RFC 3261 allows (the clause is named where
//! it is not obvious), so a parser that refuses a generated message, or reads
//! other values from it, is wrong. Each message lists the features it used;
//! the disagreement table excuses another parser's known defect by feature.

use std::net::Ipv6Addr;

use crate::view::{AddrView, Fields, Start, UriView, ViaView};

/// xorshift64* (Vigna): enough randomness for test data, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `pct` percent.
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    fn word(&mut self, alphabet: &[u8], min: usize, max: usize) -> String {
        let n = min + self.below(max - min + 1);
        (0..n).map(|_| self.pick(alphabet) as char).collect()
    }

    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            xs.swap(i, self.below(i + 1));
        }
    }
}

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// RFC 3261 §25.1 `token` characters beyond alphanumerics.
const TOKEN_MARKS: &[u8] = b"-.!%*_+`'~";
/// `word` (Call-ID) characters beyond token characters.
const WORD_MARKS: &[u8] = b"()<>:\\\"/[]?{}";

/// One generated message.
pub struct Case {
    pub name: String,
    pub raw: Vec<u8>,
    pub truth: Fields,
    pub features: Vec<&'static str>,
}

struct Gen<'r> {
    rng: &'r mut Rng,
    /// Variations this message may use, decided on first use, so that each
    /// message uses a few of them and a feature names a real subset.
    knobs: Vec<(&'static str, bool)>,
    features: Vec<&'static str>,
}

struct Header {
    /// Canonical name, compact form.
    name: (&'static str, Option<&'static str>),
    value: String,
    /// A Via line, filled in after shuffling so that Vias keep their order.
    via_slot: bool,
}

const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

impl Gen<'_> {
    fn feature(&mut self, f: &'static str) {
        if !self.features.contains(&f) {
            self.features.push(f);
        }
    }

    /// Whether this message uses variation `knob` at a site (`pct` percent
    /// of the sites, in one message of five).
    fn vary(&mut self, knob: &'static str, pct: u64) -> bool {
        let on = match self.knobs.iter().find(|(k, _)| *k == knob) {
            Some(&(_, on)) => on,
            None => {
                let on = self.rng.chance(20);
                self.knobs.push((knob, on));
                on
            }
        };
        let used = on && self.rng.chance(pct);
        if used {
            self.feature(knob);
        }
        used
    }

    /// Optional white space where the grammar has SWS (`SEMI`, `EQUAL`,
    /// `SLASH`, `COLON`, `COMMA`: RFC 3261 §25.1), sometimes folded. `place`
    /// names where, as a feature.
    fn sws(&mut self, place: &'static str) -> &'static str {
        if !self.vary(place, 50) {
            return "";
        }
        if self.vary("fold", 50) {
            return "\r\n ";
        }
        self.rng.pick(&[" ", "\t", "  ", " \t "])
    }

    /// `LWS` where the grammar requires some (CSeq, Via sent-by).
    fn lws(&mut self, place: &'static str) -> &'static str {
        if !self.vary(place, 50) {
            return " ";
        }
        if self.vary("fold", 50) {
            return "\r\n\t";
        }
        self.rng.pick(&["\t", "   ", " \t"])
    }

    fn hostname(&mut self) -> String {
        let names = [
            "atlanta.example.com",
            "biloxi.example.com",
            "pc33.atlanta.example.com",
            "proxy-1.example.net",
            "sip.example.org",
            "gateway",
            "a1.b2.example.co",
            "123.example.com",
        ];
        let mut h = self.rng.pick(&names).to_owned();
        if self.vary("host-mixed-case", 50) {
            h = h
                .char_indices()
                .map(|(i, c)| {
                    if i % 3 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
        }
        if self.vary("host-trailing-dot", 30) {
            // hostname = *( domainlabel "." ) toplabel [ "." ]
            h.push('.');
        }
        h
    }

    /// A host as written, and its canonical text.
    fn host(&mut self, context: &'static str) -> (String, String) {
        match self.rng.below(10) {
            0..=4 => {
                let h = self.hostname();
                (h.clone(), h)
            }
            5..=7 => {
                let a = format!(
                    "{}.{}.{}.{}",
                    self.rng.pick(&[192, 198, 203, 10, 172]),
                    self.rng.below(256),
                    self.rng.below(256),
                    1 + self.rng.below(254)
                );
                (a.clone(), a)
            }
            _ => {
                self.feature(context);
                let forms = [
                    "2001:db8::1",
                    "2001:DB8::10",
                    "2001:db8:0:0:0:0:0:7",
                    "::1",
                    "fe80::2a0:c9ff:fe12:3456",
                    "2001:db8:85a3::8a2e:370:7334",
                    "::ffff:192.0.2.128",
                ];
                let written = self.rng.pick(&forms);
                let addr: Ipv6Addr = written.parse().expect("valid IPv6");
                (format!("[{written}]"), format!("[{addr}]"))
            }
        }
    }

    /// A port as written (`port = 1*DIGIT`: leading zeros allowed) and read.
    fn port(&mut self) -> Option<(String, u16)> {
        if !self.rng.chance(40) {
            return None;
        }
        let p = self.rng.pick(&[5060, 5061, 5080, 15060, 1, 65535]);
        let written = if p < 10_000 && self.vary("port-zeros", 50) {
            format!("0{p}")
        } else {
            p.to_string()
        };
        Some((written, p))
    }

    /// A user part as written (possibly %-escaped) and decoded. `marks`
    /// allows `;`, `?` and `,`, which an addr-spec outside `<>` may not hold
    /// (RFC 3261 §20.10).
    fn user(&mut self, marks: bool) -> (String, String) {
        match self.rng.below(8) {
            0 => {
                let n = format!("+1555{:07}", self.rng.below(10_000_000));
                (n.clone(), n)
            }
            1 => {
                self.feature("user-escaped");
                ("alice%20smith".into(), "alice smith".into())
            }
            2 if marks => {
                self.feature("user-marks");
                // unreserved and user-unreserved characters (RFC 3261 §25.1)
                (
                    "a.b_c-d!e~f*g'h(i)j&k=l+m$n,o;p?q/r".into(),
                    "a.b_c-d!e~f*g'h(i)j&k=l+m$n,o;p?q/r".into(),
                )
            }
            _ => {
                let u = self.rng.word(ALNUM, 1, 12);
                (u.clone(), u)
            }
        }
    }

    /// A SIP URI as written and as read. `params` allows URI parameters
    /// (not allowed in an addr-spec From/To, whose `;` starts header params).
    fn sip_uri(
        &mut self,
        with_user: bool,
        params: bool,
        context: &'static str,
    ) -> (String, UriView) {
        let secure = self.rng.chance(10);
        if secure {
            self.feature("sips");
        }
        let scheme = if secure { "sips" } else { "sip" };
        let scheme = if self.vary("scheme-case", 50) {
            if secure { "SIPS" } else { "Sip" }
        } else {
            scheme
        };
        let user = with_user.then(|| self.user(params));
        let (host, canon) = self.host(context);
        let port = self.port();
        let mut s = format!("{scheme}:");
        if let Some((u, _)) = &user {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(&host);
        if let Some((p, _)) = &port {
            s.push_str(&format!(":{p}"));
        }
        if params && self.rng.chance(30) {
            self.feature("uri-params");
            let p: &str = self.rng.pick(&[
                ";transport=tcp",
                ";user=phone",
                ";lr",
                ";transport=TLS;lr",
                ";maddr=239.255.255.1;ttl=15",
            ]);
            s.push_str(p);
        }
        (
            s,
            UriView::Sip {
                secure,
                user: user.map(|(_, d)| d),
                host: canon,
                port: port.map(|(_, p)| p),
            },
        )
    }

    fn header_name(&mut self, canonical: &'static str, compact: Option<&'static str>) -> String {
        if let Some(c) = compact
            && self.vary("compact", 50)
        {
            return if self.rng.chance(50) {
                c.to_owned()
            } else {
                c.to_ascii_uppercase()
            };
        }
        if !self.vary("name-case", 60) {
            return canonical.to_owned();
        }
        match self.rng.below(3) {
            0 => canonical.to_ascii_lowercase(),
            1 => canonical.to_ascii_uppercase(),
            _ => canonical
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                })
                .collect(),
        }
    }

    /// `;name=value` with optional SWS around `;` and `=`.
    fn param(&mut self, name: &str, value: Option<&str>) -> String {
        let knob = match name {
            "branch" => "branch-name-case",
            "tag" => "tag-name-case",
            _ => "param-name-case",
        };
        // Parameter names are case-insensitive (RFC 3261 §7.3.1).
        let name = if self.vary(knob, 60) {
            name.to_ascii_uppercase()
        } else {
            name.to_owned()
        };
        let (a, b) = (self.sws("lws-semi"), self.sws("lws-semi"));
        match value {
            Some(v) => {
                let (c, d) = (self.sws("lws-equal"), self.sws("lws-equal"));
                format!("{a};{b}{name}{c}={d}{v}")
            }
            None => format!("{a};{b}{name}"),
        }
    }

    fn tag(&mut self) -> String {
        let mut t = self.rng.word(ALNUM, 4, 16);
        if self.vary("tag-marks", 50) {
            let mark = self.rng.pick(TOKEN_MARKS);
            if mark == b'%' {
                // A token character, not an escape (RFC 4475 §3.1.1.5).
                self.feature("tag-percent");
            }
            t.push(mark as char);
            t.push_str(&self.rng.word(ALNUM, 1, 3));
        }
        t
    }

    /// A From or To value and what it reads as.
    fn address(&mut self, tag: Option<String>) -> (String, AddrView) {
        let addr_spec = self.vary("addr-spec", 60);
        let (uri, view) = self.sip_uri(true, !addr_spec, "addr-ipv6");
        let mut display = None;
        let mut s = String::new();
        if addr_spec {
            s.push_str(&uri);
        } else {
            match self.rng.below(5) {
                0 => self.feature("display-none"),
                1 | 2 => {
                    self.feature("display-quoted");
                    let (written, read) = if self.vary("display-escaped", 60) {
                        self.rng.pick(&[
                            (r#"Alice \"Al\" Liddell"#, r#"Alice "Al" Liddell"#),
                            (r"Back\\slash", r"Back\slash"),
                        ])
                    } else if self.vary("display-separators", 60) {
                        ("Bob, the builder; <boss>", "Bob, the builder; <boss>")
                    } else if self.vary("display-utf8", 60) {
                        // qdtext includes UTF8-NONASCII
                        ("Zoë Ångström 李", "Zoë Ångström 李")
                    } else {
                        self.rng
                            .pick(&[("Carol", "Carol"), ("Carol Jones", "Carol Jones")])
                    };
                    s.push('"');
                    s.push_str(written);
                    s.push('"');
                    display = Some(read.to_owned());
                }
                _ => {
                    self.feature("display-token");
                    let words = [
                        "Alice", "Bob", "Smith", "J.R.", "x-y_z", "O'Brien", "Dr.Who!",
                    ];
                    let n = 1 + self.rng.below(3);
                    let chosen: Vec<&str> = (0..n).map(|_| self.rng.pick(&words)).collect();
                    if n > 1 {
                        self.feature("display-token-words");
                    }
                    s.push_str(&chosen.join(" "));
                    display = Some(chosen.join(" "));
                }
            }
            if display.is_some() {
                // LAQUOT = SWS "<": the space is optional (RFC 4475 §3.1.1.6).
                let ws = if self.vary("display-tight", 60) {
                    ""
                } else if self.vary("lws-laquot", 60) {
                    self.rng.pick(&["  ", "\t", " \t "])
                } else {
                    " "
                };
                s.push_str(ws);
            }
            s.push('<');
            s.push_str(&uri);
            s.push('>');
        }
        if let Some(t) = &tag {
            s.push_str(&self.param("tag", Some(t)));
        }
        if self.rng.chance(10) {
            self.feature("generic-params");
            s.push_str(&self.param("x-extra", Some("1")));
        }
        if self.vary("quoted-param", 40) {
            s.push_str(&self.param("x-note", Some(r#""tag=no;really, \"no\"""#)));
        }
        (
            s,
            AddrView {
                display,
                uri: view,
                tag,
            },
        )
    }

    /// One Via value, and the top one's reading when it is the first.
    fn via(&mut self) -> (String, ViaView) {
        let transports = ["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"];
        let transport = self.rng.pick(&transports);
        let written_transport = if self.vary("transport-case", 60) {
            transport.to_ascii_lowercase()
        } else {
            transport.to_owned()
        };
        let (host, canon) = self.host("via-ipv6");
        let port = self.port();
        let mut branch = format!("z9hG4bK{}", self.rng.word(ALNUM, 6, 20));
        if self.vary("branch-marks", 60) {
            let mark = self.rng.pick(TOKEN_MARKS);
            if mark == b'%' {
                self.feature("branch-percent");
            }
            branch.push(mark as char);
            branch.push_str(&self.rng.word(ALNUM, 1, 4));
        }
        let slash = |g: &mut Self| format!("{}/{}", g.sws("lws-slash"), g.sws("lws-slash"));
        // protocol-name = "SIP" / token: any case.
        let sip = if self.vary("via-protocol-case", 50) {
            "sip"
        } else {
            "SIP"
        };
        let mut s = format!(
            "{sip}{}2.0{}{written_transport}{}{host}",
            slash(self),
            slash(self),
            self.lws("lws-via-sent-by")
        );
        if let Some((p, _)) = &port {
            // sent-by = host [ COLON port ], COLON = SWS ":" SWS
            let (a, b) = (self.sws("lws-via-colon"), self.sws("lws-via-colon"));
            s.push_str(&format!("{a}:{b}{p}"));
        }
        let mut params = vec![("branch", Some(branch.clone()))];
        if self.rng.chance(30) {
            self.feature("via-rport");
            params.push(("rport", None));
        }
        if self.rng.chance(20) {
            // via-received = "received" EQUAL (IPv4address / IPv6address)
            let v6 = self.vary("via-received-ipv6", 60);
            params.push((
                "received",
                Some(if v6 { "2001:db8::77" } else { "192.0.2.77" }.to_owned()),
            ));
        }
        if self.vary("via-maddr-ipv6", 30) {
            params.push(("maddr", Some("[ff02::fb]".to_owned())));
        }
        if self.vary("quoted-param", 40) {
            // generic-param: gen-value = token / host / quoted-string
            params.push(("x-info", Some(r#""a b;c,d=\"e\"""#.to_owned())));
        }
        if self.rng.chance(10) {
            params.push(("ttl", Some("16".to_owned())));
        }
        self.rng.shuffle(&mut params);
        if params[0].0 != "branch" {
            self.feature("branch-not-first");
        }
        for (n, v) in &params {
            let p = self.param(n, v.as_deref());
            s.push_str(&p);
        }
        (
            s,
            ViaView {
                transport: transport.to_owned(),
                host: canon,
                port: port.map(|(_, p)| p),
                branch: Some(branch),
            },
        )
    }

    fn call_id(&mut self) -> String {
        let mut alphabet = ALNUM.to_vec();
        if self.vary("callid-marks", 100) {
            alphabet.extend_from_slice(TOKEN_MARKS);
        }
        if self.vary("callid-word-marks", 100) {
            alphabet.extend_from_slice(WORD_MARKS);
        }
        let local = self.rng.word(&alphabet, 1, 24);
        if self.rng.chance(25) {
            self.feature("callid-no-at");
            local
        } else {
            format!("{local}@{}", self.rng.word(&alphabet, 1, 16))
        }
    }

    fn body(&mut self) -> Option<String> {
        self.rng.chance(40).then(|| {
            self.feature("body");
            format!(
                "v=0\r\no=- {} 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                 m=audio {} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
                self.rng.below(1 << 30),
                10_000 + 2 * self.rng.below(10_000)
            )
        })
    }
}

/// The `index`th message of the stream from `seed`.
fn generate(rng: &mut Rng, index: usize) -> Case {
    let mut g = Gen {
        rng,
        knobs: Vec::new(),
        features: Vec::new(),
    };
    let request = g.rng.chance(65);
    let method: String = if g.rng.chance(5) {
        g.feature("extension-method");
        let mut m = format!("X-{}", g.rng.word(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", 3, 8));
        if g.vary("method-marks", 60) {
            m.push_str(".v2!~");
        }
        m
    } else {
        g.rng.pick(METHODS).to_owned()
    };
    let mut headers: Vec<Header> = Vec::new();
    let push = |h: &mut Vec<Header>, name, compact, value: String| {
        h.push(Header {
            name: (name, compact),
            value,
            via_slot: false,
        })
    };

    // Start line.
    let (start_line, start) = if request {
        g.feature("request");
        let register = method == "REGISTER";
        let (uri, view) = if !register && g.rng.chance(5) {
            g.feature("ruri-tel");
            let t = format!("tel:+1-201-555-{:04}", g.rng.below(10_000));
            (t.clone(), UriView::Other(t))
        } else {
            g.sip_uri(!register, true, "ruri-ipv6")
        };
        (
            // "The SIP-Version string is case-insensitive" (RFC 3261 §7.1).
            format!(
                "{method} {uri} {}",
                if g.vary("version-case", 50) {
                    "sip/2.0"
                } else {
                    "SIP/2.0"
                }
            ),
            Start::Request {
                method: method.clone(),
                uri: view,
            },
        )
    } else {
        g.feature("response");
        let (code, reason) = g.rng.pick(&[
            (100, "Trying"),
            (180, "Ringing"),
            (183, "Session Progress"),
            (200, "OK"),
            (202, "Accepted"),
            (302, "Moved Temporarily"),
            (401, "Unauthorized"),
            (404, "Not Found"),
            (486, "Busy Here"),
            (487, "Request Terminated"),
            (503, "Service Unavailable"),
            (603, "Decline"),
            (299, "Unknown But Valid"),
            (499, ""),
        ]);
        // Reason-Phrase allows UTF-8, SP and HTAB.
        let reason = if g.vary("reason-utf8", 60) {
            "Très\toccupé, désolé"
        } else {
            reason
        };
        let version = if g.vary("version-case", 50) {
            "Sip/2.0"
        } else {
            "SIP/2.0"
        };
        (
            format!("{version} {code} {reason}"),
            Start::Response { code },
        )
    };

    // Vias: one to four, on their own lines or comma-joined.
    let hops = 1 + g.rng.below(4);
    let vias: Vec<(String, ViaView)> = (0..hops).map(|_| g.via()).collect();
    let top = vias[0].1.clone();
    let mut via_lines: Vec<String> = Vec::new();
    // Each hop starts a new line or joins the previous one with a comma.
    for (i, (v, _)) in vias.into_iter().enumerate() {
        if i > 0 && g.rng.chance(50) {
            g.feature("via-comma");
            let (a, b) = (g.sws("lws-comma"), g.sws("lws-comma"));
            let line = via_lines.last_mut().expect("a first line");
            line.push_str(&format!("{a},{b}{v}"));
        } else {
            if i > 0 {
                g.feature("via-lines");
            }
            via_lines.push(v);
        }
    }
    for _ in &via_lines {
        headers.push(Header {
            name: ("Via", Some("v")),
            value: String::new(),
            via_slot: true,
        });
    }

    let from_tag = g.tag();
    let (from, from_view) = g.address(Some(from_tag));
    let to_tag = (!request || g.rng.chance(30)).then(|| g.tag());
    let (to, to_view) = g.address(to_tag);
    let call_id = g.call_id();
    let seq = if g.rng.chance(10) {
        g.feature("cseq-large");
        (1u32 << 31) - 1 - g.rng.below(1000) as u32
    } else {
        g.rng.below(100_000) as u32
    };
    let cseq_method = if request {
        method.clone()
    } else {
        g.rng.pick(METHODS).to_owned()
    };
    let cseq_lws = g.lws("lws-cseq");
    let zeros = if g.vary("cseq-zeros", 60) { "00" } else { "" };
    push(&mut headers, "From", Some("f"), from);
    push(&mut headers, "To", Some("t"), to);
    push(&mut headers, "Call-ID", Some("i"), call_id.clone());
    push(
        &mut headers,
        "CSeq",
        None,
        format!("{zeros}{seq}{cseq_lws}{cseq_method}"),
    );
    if request {
        push(
            &mut headers,
            "Max-Forwards",
            None,
            g.rng.below(71).to_string(),
        );
    }
    if g.rng.chance(50) {
        let (c, _) = g.sip_uri(true, true, "contact-ipv6");
        push(&mut headers, "Contact", Some("m"), format!("<{c}>"));
    }
    if g.rng.chance(30) {
        push(
            &mut headers,
            "User-Agent",
            None,
            "Tally-Gen/1.0 (differential)".into(),
        );
    }
    if g.rng.chance(30) {
        push(
            &mut headers,
            "Supported",
            Some("k"),
            "replaces, timer".into(),
        );
    }
    if g.rng.chance(20) {
        push(
            &mut headers,
            "Allow",
            None,
            "INVITE, ACK, CANCEL, BYE, OPTIONS".into(),
        );
    }
    if g.rng.chance(15) {
        g.feature("extension-header");
        push(
            &mut headers,
            "X-Tally-Test",
            None,
            "a value; with, punctuation".into(),
        );
    }
    if request && g.rng.chance(15) {
        let (h, _) = g.host("route-ipv6");
        push(&mut headers, "Route", None, format!("<sip:{h};lr>"));
    }
    if g.rng.chance(10) {
        push(&mut headers, "Subject", Some("s"), "".into());
        g.feature("empty-subject");
    }
    let body = g.body();
    if let Some(b) = &body {
        push(
            &mut headers,
            "Content-Type",
            Some("c"),
            "application/sdp".into(),
        );
        let len = if g.rng.chance(10) {
            g.feature("content-length-zeros");
            format!("000{}", b.len())
        } else {
            b.len().to_string()
        };
        push(&mut headers, "Content-Length", Some("l"), len);
    } else if g.rng.chance(90) {
        push(&mut headers, "Content-Length", Some("l"), "0".into());
    } else {
        // RFC 3261 §18.3: optional on a datagram; the body is what is left.
        g.feature("no-content-length");
    }

    if g.rng.chance(50) {
        g.feature("shuffled");
        g.rng.shuffle(&mut headers);
    }
    let mut via_values = via_lines.into_iter();
    let mut raw = start_line;
    raw.push_str("\r\n");
    for h in &headers {
        let name = g.header_name(h.name.0, h.name.1);
        let value = if h.via_slot {
            via_values.next().expect("a Via for each slot")
        } else {
            h.value.clone()
        };
        // HCOLON = *( SP / HTAB ) ":" SWS
        let before = if g.vary("lws-before-colon", 50) {
            g.rng.pick(&[" ", "\t", "  "])
        } else {
            ""
        };
        let after = if value.is_empty() {
            if g.rng.chance(50) { " " } else { "" }
        } else if g.vary("no-space-after-colon", 50) {
            ""
        } else if g.vary("tab-after-colon", 50) {
            "\t"
        } else if g.vary("spaces-after-colon", 50) {
            "    "
        } else if g.vary("fold-after-colon", 50) {
            "\r\n  "
        } else {
            " "
        };
        raw.push_str(&format!("{name}{before}:{after}{value}\r\n"));
    }
    raw.push_str("\r\n");
    if let Some(b) = &body {
        raw.push_str(b);
    }
    let mut features = g.features;
    features.sort_unstable();
    Case {
        name: format!("gen#{index}"),
        raw: raw.into_bytes(),
        truth: Fields {
            start,
            via: top,
            from: from_view,
            to: to_view,
            call_id,
            cseq: seq,
            cseq_method,
        },
        features,
    }
}

/// `n` messages from `seed`.
pub fn cases(seed: u64, n: usize) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    (0..n).map(|i| generate(&mut rng, i)).collect()
}
