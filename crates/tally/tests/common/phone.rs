//! A SIP phone over UDP, written as text the way phones write it, using
//! the sip crate only to read what comes back and for the digest answer.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sip::auth::{Algorithm, Challenge, DigestClient, strongest_challenge};
use sip::{HeaderName, Message, ResponseBuilder};

use super::WAIT;

static UNIQUE: AtomicU32 = AtomicU32::new(1);

fn unique() -> u32 {
    UNIQUE.fetch_add(1, Ordering::Relaxed)
}

pub const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                       m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// Which digest challenge a phone answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// The strongest offered (SHA-256), as RFC 8760 phones do.
    Strongest,
    /// MD5 only, as older phones and SIPp do.
    Md5,
}

pub struct Phone {
    socket: UdpSocket,
    pub extension: String,
    pub password: String,
    pub domain: String,
    pub pbx: SocketAddr,
    pub digest: Digest,
    /// Parameters added to the Contact of its REGISTERs (e.g. `;q=0.7`).
    pub contact_params: String,
    register_call_id: String,
    register_cseq: u32,
}

/// A call placed by [`Phone::invite`]: what the caller needs for ACK and BYE.
pub struct Outgoing {
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub remote_target: String,
    pub cseq: u32,
    pub status: u16,
}

impl Phone {
    pub fn new(extension: &str, password: &str, domain: &str, pbx: SocketAddr) -> Phone {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind phone");
        Phone {
            socket,
            extension: extension.to_owned(),
            password: password.to_owned(),
            domain: domain.to_owned(),
            pbx,
            digest: Digest::Strongest,
            contact_params: String::new(),
            register_call_id: format!("reg-{}@test", unique()),
            register_cseq: 0,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("phone addr")
    }

    pub fn via(&self) -> String {
        format!(
            "Via: SIP/2.0/UDP {};branch=z9hG4bK-t{};rport\r\n",
            self.addr(),
            unique()
        )
    }

    pub fn send(&self, text: &str) {
        self.socket
            .send_to(text.as_bytes(), self.pbx)
            .expect("send");
    }

    pub fn send_message(&self, m: &Message) {
        self.socket.send_to(m.as_bytes(), self.pbx).expect("send");
    }

    /// The next message, within `WAIT`.
    pub fn recv(&self) -> Message {
        self.try_recv(WAIT)
            .unwrap_or_else(|| panic!("{}: nothing received", self.extension))
    }

    pub fn try_recv(&self, wait: Duration) -> Option<Message> {
        let mut buf = vec![0u8; 65_535];
        self.socket
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .ok()?;
        match self.socket.recv_from(&mut buf) {
            Ok((n, _)) => Some(Message::parse(buf[..n].to_vec()).expect("PBX sent unparsable SIP")),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// The next final response (provisional ones skipped).
    pub fn recv_final(&self) -> Message {
        loop {
            let m = self.recv();
            if m.status().is_some_and(|s| s >= 200) {
                return m;
            }
        }
    }

    /// The next request of `method` (responses and retransmitted
    /// provisionals skipped).
    pub fn recv_request(&self, method: &str) -> Message {
        loop {
            let m = self.recv();
            if m.method().is_some_and(|x| x.as_str() == method) {
                return m;
            }
        }
    }

    pub fn credentials(&self, response: &Message, method: &str, uri: &str) -> String {
        let (challenge_header, answer_header) = if response.status() == Some(407) {
            (HeaderName::ProxyAuthenticate, "Proxy-Authorization")
        } else {
            (HeaderName::WwwAuthenticate, "Authorization")
        };
        let challenges: Vec<Challenge> = response
            .challenges(challenge_header)
            .collect::<Result<_, _>>()
            .expect("challenges parse");
        let challenge = match self.digest {
            Digest::Strongest => strongest_challenge(&challenges),
            Digest::Md5 => challenges.iter().find(|c| c.algorithm == Algorithm::Md5),
        }
        .expect("an answerable challenge");
        let credentials = DigestClient::new(&self.extension, &self.password)
            .respond(challenge, method, uri, &format!("cn{}", unique()))
            .expect("digest answer");
        format!("{answer_header}: {credentials}\r\n")
    }

    fn register_text(&mut self, expires: u32, auth: &str) -> String {
        self.register_cseq += 1;
        format!(
            "REGISTER sip:{domain} SIP/2.0\r\n{via}Max-Forwards: 70\r\n\
             From: <sip:{ext}@{domain}>;tag=r{tag}\r\nTo: <sip:{ext}@{domain}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{ext}@{addr}>{params}\r\nExpires: {expires}\r\nUser-Agent: tally-test\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            domain = self.domain,
            via = self.via(),
            ext = self.extension,
            tag = unique(),
            call_id = self.register_call_id,
            cseq = self.register_cseq,
            addr = self.addr(),
            params = self.contact_params,
        )
    }

    /// REGISTER, answering the 401; returns the final status.
    pub fn register(&mut self) -> u16 {
        self.register_for(300)
    }

    pub fn register_for(&mut self, expires: u32) -> u16 {
        self.register_response(expires).status().unwrap_or(0)
    }

    /// REGISTER, answering the 401; returns the final response.
    pub fn register_response(&mut self, expires: u32) -> Message {
        let text = self.register_text(expires, "");
        self.send(&text);
        let challenge = self.recv_final();
        if challenge.status() != Some(401) {
            return challenge;
        }
        let auth = self.credentials(&challenge, "REGISTER", &format!("sip:{}", self.domain));
        let text = self.register_text(expires, &auth);
        self.send(&text);
        self.recv_final()
    }

    fn invite_text(
        &self,
        to: &str,
        call_id: &str,
        from_tag: &str,
        cseq: u32,
        auth: &str,
    ) -> String {
        format!(
            "INVITE sip:{to}@{domain} SIP/2.0\r\n{via}Max-Forwards: 70\r\n\
             From: \"Ext {ext}\" <sip:{ext}@{domain}>;tag={from_tag}\r\nTo: <sip:{to}@{domain}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{ext}@{addr}>\r\n\
             {auth}Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{SDP}",
            domain = self.domain,
            via = self.via(),
            ext = self.extension,
            addr = self.addr(),
            len = SDP.len(),
        )
    }

    /// Calls `to`, answering the 407, until the first final response to
    /// the authenticated INVITE (which it does not ACK: see [`Phone::ack`]).
    /// `on_provisional` sees each provisional response.
    pub fn invite(&self, to: &str, on_provisional: impl FnMut(&Message)) -> Outgoing {
        self.try_invite(to, WAIT, on_provisional)
            .unwrap_or_else(|| panic!("{}: the call got no final response", self.extension))
    }

    /// Sends an INVITE without credentials; the first final response.
    pub fn invite_status(&self, to: &str) -> u16 {
        let call_id = format!("call-{}@test", unique());
        self.send(&self.invite_text(to, &call_id, &format!("f{}", unique()), 1, ""));
        self.recv_final().status().unwrap_or(0)
    }

    /// [`Phone::invite`], or `None` when a response does not come within
    /// `wait`.
    pub fn try_invite(
        &self,
        to: &str,
        wait: Duration,
        mut on_provisional: impl FnMut(&Message),
    ) -> Option<Outgoing> {
        let final_response = || loop {
            let m = self.try_recv(wait)?;
            if m.status().is_some_and(|s| s >= 200) {
                return Some(m);
            }
        };
        let call_id = format!("call-{}@test", unique());
        let from_tag = format!("f{}", unique());
        self.send(&self.invite_text(to, &call_id, &from_tag, 1, ""));
        let challenge = final_response()?;
        assert_eq!(challenge.status(), Some(407), "{}", challenge.summary());
        // ACK the 407 (RFC 3261 §17.1.1.3: same branch, the response's To).
        let to_header = challenge.header(HeaderName::To).expect("To");
        let via = challenge.header(HeaderName::Via).expect("Via");
        self.send(&format!(
            "ACK sip:{to}@{domain} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: \"Ext {ext}\" <sip:{ext}@{domain}>;tag={from_tag}\r\nTo: {to_header}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            domain = self.domain,
            ext = self.extension,
        ));
        let auth = self.credentials(&challenge, "INVITE", &format!("sip:{to}@{}", self.domain));
        self.send(&self.invite_text(to, &call_id, &from_tag, 2, &auth));
        let last = loop {
            let m = self.try_recv(wait)?;
            match m.status() {
                Some(s) if s >= 200 => break m,
                Some(_) => on_provisional(&m),
                None => {}
            }
        };
        Some(Outgoing {
            call_id,
            from_tag,
            to_tag: last
                .to()
                .ok()
                .and_then(|t| t.tag().map(str::to_owned))
                .unwrap_or_default(),
            remote_target: contact_uri(&last).unwrap_or_default(),
            cseq: 2,
            status: last.status().unwrap_or(0),
        })
    }

    fn in_dialog(&self, method: &str, call: &Outgoing, to: &str, cseq: u32) -> String {
        format!(
            "{method} {target} SIP/2.0\r\n{via}Max-Forwards: 70\r\n\
             From: \"Ext {ext}\" <sip:{ext}@{domain}>;tag={from_tag}\r\n\
             To: <sip:{to}@{domain}>;tag={to_tag}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            target = call.remote_target,
            via = self.via(),
            ext = self.extension,
            domain = self.domain,
            from_tag = call.from_tag,
            to_tag = call.to_tag,
            call_id = call.call_id,
        )
    }

    /// ACK for a 2xx to the INVITE.
    pub fn ack(&self, call: &Outgoing, to: &str) {
        self.send(&self.in_dialog("ACK", call, to, call.cseq));
    }

    /// BYE; returns the status of its response.
    pub fn bye(&self, call: &mut Outgoing, to: &str) -> u16 {
        call.cseq += 1;
        self.send(&self.in_dialog("BYE", call, to, call.cseq));
        loop {
            let m = self.recv();
            if m.status().is_some() && m.cseq().is_ok_and(|c| c.method.as_str() == "BYE") {
                return m.status().unwrap_or(0);
            }
        }
    }

    /// Answers a received request with `code` (and our tag, the SDP and a
    /// Contact for a 2xx to an INVITE).
    pub fn reply(&self, request: &Message, code: u16, tag: &str) {
        let mut b = ResponseBuilder::reply(request, code);
        if request.to().is_ok_and(|t| t.tag().is_none()) {
            b = b.to_tag(tag);
        }
        if request.method().is_some_and(|m| m.as_str() == "INVITE") && (200..300).contains(&code) {
            b = b
                .header(
                    HeaderName::Contact,
                    format!("<sip:{}@{}>", self.extension, self.addr()),
                )
                .body("application/sdp", SDP.as_bytes().to_vec());
        }
        let m = b.build().expect("response builds");
        self.send_message(&m);
    }
}

/// The URI inside a message's first Contact.
pub fn contact_uri(m: &Message) -> Option<String> {
    let raw = m.header(HeaderName::Contact)?;
    let start = raw.find('<')? + 1;
    let end = raw[start..].find('>')? + start;
    Some(raw[start..end].to_owned())
}
