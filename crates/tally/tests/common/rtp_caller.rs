//! A caller for calls the PBX answers itself (IVRs, queues): SIP through
//! [`Phone`], RTP on a socket of its own: it records what the relay sends
//! (decoded PCMU) and sends RFC 4733 digits built with the `media` crate.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use media::dtmf::{EventSender, key_event};
use media::g711::Law;
use media::rtp::{RtpHeader, RtpPacket};

use super::flows::{DEMO_DOMAIN, Demo};
use super::phone::{Outgoing, Phone};

/// The caller: SIP through [`Phone`], RTP on a socket of its own.
pub struct Caller {
    pub phone: Phone,
    rtp: UdpSocket,
    relay: Option<SocketAddr>,
    seq: u16,
}

impl Caller {
    pub fn new(demo: &Demo) -> Caller {
        let phone = Phone::new("101", &demo.password("101"), DEMO_DOMAIN, demo.server.sip);
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        rtp.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Caller {
            phone,
            rtp,
            relay: None,
            seq: 1,
        }
    }

    fn invite_text(&self, to: &str, call_id: &str, tag: &str, cseq: u32, auth: &str) -> String {
        let port = self.rtp.local_addr().unwrap().port();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
        );
        format!(
            "INVITE sip:{to}@{DEMO_DOMAIN} SIP/2.0\r\n{via}Max-Forwards: 70\r\n\
             From: \"Ext 101\" <sip:101@{DEMO_DOMAIN}>;tag={tag}\r\nTo: <sip:{to}@{DEMO_DOMAIN}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:101@{addr}>\r\n{auth}\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            via = self.phone.via(),
            addr = self.phone.addr(),
            len = sdp.len(),
        )
    }

    /// Calls `to`; the IVR answers at once. Returns the dialog.
    pub fn call(&mut self, to: &str) -> Outgoing {
        static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let call_id = format!("app-{to}-{n}-{}@test", std::process::id());
        let tag = format!("t{to}x{n}");
        self.phone
            .send(&self.invite_text(to, &call_id, &tag, 1, ""));
        let challenge = self.phone.recv_final();
        assert_eq!(challenge.status(), Some(407), "{}", challenge.summary());
        let to_header = challenge.header(sip::HeaderName::To).unwrap().to_owned();
        let via = challenge.header(sip::HeaderName::Via).unwrap().to_owned();
        self.phone.send(&format!(
            "ACK sip:{to}@{DEMO_DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: \"Ext 101\" <sip:101@{DEMO_DOMAIN}>;tag={tag}\r\nTo: {to_header}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        ));
        let auth = self
            .phone
            .credentials(&challenge, "INVITE", &format!("sip:{to}@{DEMO_DOMAIN}"));
        self.phone
            .send(&self.invite_text(to, &call_id, &tag, 2, &auth));
        let ok = self.phone.recv_final();
        assert_eq!(ok.status(), Some(200), "{}", ok.summary());
        // The relay's side A, from the PBX's own SDP.
        let sdp = sip::sdp::SessionDescription::parse(ok.body()).expect("SDP in the 200");
        let m = &sdp.media[0];
        let ip = sdp.media_connection(m).and_then(|c| c.ip()).unwrap();
        assert_eq!(
            m.formats,
            vec!["0".to_owned(), "101".to_owned()],
            "PCMU and events"
        );
        self.relay = Some(SocketAddr::new(ip, m.port));
        let call = Outgoing {
            call_id,
            from_tag: tag,
            to_tag: ok.to().unwrap().tag().unwrap().to_owned(),
            remote_target: super::phone::contact_uri(&ok).unwrap(),
            cseq: 2,
            status: 200,
        };
        self.phone.ack(&call, to);
        call
    }

    /// What the relay sends for `secs`, decoded.
    pub fn listen(&self, secs: f64) -> Vec<i16> {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let mut pcm = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < until {
            if let Ok((n, _)) = self.rtp.recv_from(&mut buf)
                && let Ok(p) = RtpPacket::parse(&buf[..n])
                && p.header.payload_type == 0
            {
                let mut out = [0i16; 512];
                let k = Law::Pcmu.decode_into(p.payload, &mut out);
                pcm.extend_from_slice(&out[..k]);
            }
        }
        pcm
    }

    /// Presses `key` (RFC 4733, 100 ms).
    pub fn press(&mut self, key: char) {
        let relay = self.relay.expect("answered");
        let ts = u32::from(self.seq) * 160;
        for (marker, payload) in EventSender::new(key_event(key).unwrap(), 10, 800, 160) {
            let h = RtpHeader {
                marker,
                payload_type: 101,
                sequence: self.seq,
                timestamp: ts,
                ssrc: 0x1010,
            };
            self.seq = self.seq.wrapping_add(1);
            let mut out = [0u8; 64];
            let n = h.write(&payload, &mut out).unwrap();
            self.rtp.send_to(&out[..n], relay).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
