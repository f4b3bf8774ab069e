//! The long connection's wire format: protobuf `pbbp2.Frame` (as in the official SDKs),
//! declared with prost's derive so no `protoc` is needed. Control frames (method 0) are pings
//! and pongs; data frames (method 1) carry an event's JSON, possibly split in `sum` parts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use prost::Message;

pub const METHOD_CONTROL: i32 = 0;
pub const METHOD_DATA: i32 = 1;

#[derive(Clone, PartialEq, Message)]
pub struct Header {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Frame {
    #[prost(uint64, required, tag = "1")]
    pub seq_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub log_id: u64,
    #[prost(int32, required, tag = "3")]
    pub service: i32,
    #[prost(int32, required, tag = "4")]
    pub method: i32,
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<Header>,
    #[prost(string, optional, tag = "6")]
    pub payload_encoding: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub payload_type: Option<String>,
    #[prost(bytes = "vec", optional, tag = "8")]
    pub payload: Option<Vec<u8>>,
    #[prost(string, optional, tag = "9")]
    pub log_id_new: Option<String>,
}

impl Frame {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.key == key).map(|h| h.value.as_str())
    }

    pub fn set_header(&mut self, key: &str, value: &str) {
        match self.headers.iter_mut().find(|h| h.key == key) {
            Some(h) => h.value = value.to_owned(),
            None => self.headers.push(Header { key: key.to_owned(), value: value.to_owned() }),
        }
    }

    /// A ping for `service` (the `service_id` of the connection URL).
    pub fn ping(service: i32) -> Self {
        Frame {
            method: METHOD_CONTROL,
            service,
            headers: vec![Header { key: "type".into(), value: "ping".into() }],
            ..Default::default()
        }
    }

    pub fn decode_bytes(bytes: &[u8]) -> Option<Self> {
        Frame::decode(bytes).ok()
    }
}

/// Parts of split data frames, by `message_id`, until all `sum` have arrived. Incomplete
/// messages are forgotten after `ttl` (the server resends them whole).
/// When the first part arrived, and the parts so far (by `seq`).
type Partial = (Instant, Vec<Option<Vec<u8>>>);

pub struct Reassembly {
    pending: HashMap<String, Partial>,
    ttl: Duration,
}

impl Reassembly {
    pub fn new(ttl: Duration) -> Self {
        Self { pending: HashMap::new(), ttl }
    }

    /// The whole payload once `frame` completes its message; `None` while parts are missing
    /// or when the frame's part numbers make no sense.
    pub fn add(&mut self, frame: &Frame) -> Option<Vec<u8>> {
        let payload = frame.payload.clone().unwrap_or_default();
        let sum: usize = frame.header("sum").and_then(|s| s.parse().ok()).unwrap_or(1);
        let seq: usize = frame.header("seq").and_then(|s| s.parse().ok()).unwrap_or(0);
        if sum <= 1 {
            return Some(payload);
        }
        if seq >= sum || sum > 1024 {
            return None;
        }
        let now = Instant::now();
        self.pending.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
        let id = frame.header("message_id").unwrap_or_default().to_owned();
        let (_, parts) = self.pending.entry(id.clone()).or_insert_with(|| (now, vec![None; sum]));
        if parts.len() != sum {
            *parts = vec![None; sum];
        }
        parts[seq] = Some(payload);
        if parts.iter().all(Option::is_some) {
            let (_, parts) = self.pending.remove(&id)?;
            return Some(parts.into_iter().flatten().flatten().collect());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(message_id: &str, sum: usize, seq: usize, payload: &[u8]) -> Frame {
        Frame {
            seq_id: 1,
            log_id: 2,
            service: 7,
            method: METHOD_DATA,
            headers: vec![
                Header { key: "type".into(), value: "event".into() },
                Header { key: "message_id".into(), value: message_id.into() },
                Header { key: "sum".into(), value: sum.to_string() },
                Header { key: "seq".into(), value: seq.to_string() },
            ],
            payload: Some(payload.to_vec()),
            ..Default::default()
        }
    }

    #[test]
    fn frames_round_trip_and_garbage_is_none() {
        let f = data("m", 1, 0, b"{}");
        let bytes = f.encode_to_vec();
        assert_eq!(Frame::decode_bytes(&bytes), Some(f));
        assert_eq!(Frame::decode_bytes(&[0xff, 0xff, 0xff]), None);
        let ping = Frame::decode_bytes(&Frame::ping(7).encode_to_vec()).unwrap();
        assert_eq!((ping.method, ping.service, ping.header("type")), (METHOD_CONTROL, 7, Some("ping")));
    }

    /// Bytes produced by the official Python SDK's `Frame.SerializeToString()` for
    /// `fake_feishu_ws.py`'s data frame with payload `{}`.
    #[test]
    fn decodes_what_the_python_sdk_writes() {
        let mut bytes = vec![0x08, 0x01, 0x10, 0x01, 0x18, 0x07, 0x20, 0x01];
        for (k, v) in [("type", "event"), ("message_id", "m-1"), ("trace_id", "t-1"), ("sum", "1"), ("seq", "0")] {
            let mut h = vec![0x0a, k.len() as u8];
            h.extend_from_slice(k.as_bytes());
            h.extend_from_slice(&[0x12, v.len() as u8]);
            h.extend_from_slice(v.as_bytes());
            bytes.push(0x2a);
            bytes.push(h.len() as u8);
            bytes.extend(h);
        }
        bytes.extend_from_slice(&[0x42, 0x02, b'{', b'}']);
        let f = Frame::decode_bytes(&bytes).unwrap();
        assert_eq!((f.seq_id, f.log_id, f.service, f.method), (1, 1, 7, METHOD_DATA));
        assert_eq!(f.header("message_id"), Some("m-1"));
        assert_eq!(f.payload.as_deref(), Some(&b"{}"[..]));
        assert_eq!(f.encode_to_vec(), bytes, "and writes it back byte for byte");
    }

    #[test]
    fn split_messages_are_joined_in_seq_order() {
        let mut r = Reassembly::new(Duration::from_secs(5));
        assert_eq!(r.add(&data("a", 1, 0, b"whole")), Some(b"whole".to_vec()));
        assert_eq!(r.add(&data("b", 3, 2, b"three")), None);
        assert_eq!(r.add(&data("b", 3, 0, b"one-")), None);
        assert_eq!(r.add(&data("c", 2, 0, b"other")), None);
        assert_eq!(r.add(&data("b", 3, 1, b"two-")), Some(b"one-two-three".to_vec()));
        assert_eq!(r.add(&data("x", 2, 5, b"bad seq")), None);
    }
}
