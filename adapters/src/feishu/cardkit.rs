//! CardKit card entities: how a turn's live status streams on Feishu. The status is a card
//! entity (`POST /open-apis/cardkit/v1/cards`, schema 2.0, `streaming_mode` on) shown by one
//! interactive message that references it; each new status line is streamed into the card's
//! text element (`PUT …/elements/{element_id}/content`), which is not a message edit: no
//! "edited" badge and none of message PATCH's 50-a-minute limit. Every update of a card carries
//! a `sequence` that must grow, so a card's sequence lives with it here. When the turn's Stop
//! button goes (the turn ended) the card is redrawn and streaming turned off; streaming also
//! ends on its own after 10 minutes, so a longer turn moves to a fresh card entity first
//! ([`ROTATE_AFTER`]).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::api::{ApiError, FeishuApi};
use super::card::{self, Button};

/// A card entity streams for 10 minutes on the platform; a live status older than this moves to
/// a new one while there is time left to do so.
pub const ROTATE_AFTER: Duration = Duration::from_secs(500);

impl FeishuApi {
    /// Creates a card entity from `card` (card JSON schema 2.0); its `card_id`.
    pub async fn create_card(&self, card: &Value) -> Result<String, ApiError> {
        let body = json!({"type": "card_json", "data": card.to_string()});
        let value = self.call("create card", Method::POST, "/open-apis/cardkit/v1/cards", Some(&body)).await?;
        match value.pointer("/data/card_id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(ApiError::Api {
                what: "create card",
                status: 200,
                code: -1,
                msg: "no card_id in the answer".into(),
            }),
        }
    }

    /// Streams `content` into element `element` of card `card_id` (streaming mode on).
    pub async fn stream_text(
        &self,
        card_id: &str,
        element: &str,
        content: &str,
        sequence: u64,
    ) -> Result<(), ApiError> {
        let body = json!({"content": content, "sequence": sequence});
        let path = format!("/open-apis/cardkit/v1/cards/{}/elements/{}/content", segment(card_id), segment(element));
        self.call("stream card text", Method::PUT, &path, Some(&body)).await.map(|_| ())
    }

    /// Replaces card `card_id` with `card` as a whole (its buttons changed, or streaming is off).
    pub async fn replace_card(&self, card_id: &str, card: &Value, sequence: u64) -> Result<(), ApiError> {
        let body = json!({"card": {"type": "card_json", "data": card.to_string()}, "sequence": sequence});
        let path = format!("/open-apis/cardkit/v1/cards/{}", segment(card_id));
        self.call("replace card", Method::PUT, &path, Some(&body)).await.map(|_| ())
    }

    /// Turns card `card_id`'s streaming mode off: the card shows as a finished card again.
    pub async fn stop_streaming(&self, card_id: &str, sequence: u64) -> Result<(), ApiError> {
        let settings = json!({"config": {"streaming_mode": false}}).to_string();
        let body = json!({"settings": settings, "sequence": sequence});
        let path = format!("/open-apis/cardkit/v1/cards/{}/settings", segment(card_id));
        self.call("card settings", Method::PATCH, &path, Some(&body)).await.map(|_| ())
    }
}

/// Card and element ids are `[A-Za-z0-9_-]`; anything else is dropped so an id cannot change
/// the path.
fn segment(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
}

/// What one live message's card entity shows, as this process drove it (after a restart the
/// message is edited by message PATCH instead: the sequence reached is not known).
#[derive(Debug, Clone)]
pub struct Stream {
    pub card_id: String,
    /// The last `sequence` used on the card.
    sequence: u64,
    opened: Instant,
    /// Streaming mode is still on.
    pub streaming: bool,
    text: String,
    /// The buttons' values as shown (a change redraws the card; text alone is streamed).
    buttons: Vec<Value>,
    /// The card lost its buttons: the turn ended, streaming is to be turned off.
    ended: bool,
}

/// The next request to make of a card to show a new state.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Stream the text into the text element.
    Text(String),
    /// Redraw the whole card (its buttons changed).
    Replace(Value),
    /// Turn streaming off.
    StopStreaming,
}

impl Stream {
    /// A card entity just created showing `text` and `buttons`, streaming.
    pub fn new(card_id: String, text: &str, buttons: &[Button], now: Instant) -> Self {
        Self {
            card_id,
            sequence: 0,
            opened: now,
            streaming: true,
            text: text.to_owned(),
            buttons: values(buttons),
            ended: false,
        }
    }

    /// The next sequence number of the card.
    pub fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    /// Whether streaming is about to end on the platform while the status still goes on: the
    /// status moves to a new card entity.
    pub fn due_for_rotation(&self, buttons: &[Button], now: Instant, after: Duration) -> bool {
        self.streaming && !self.ends(buttons) && now.duration_since(self.opened) >= after
    }

    /// The next request that brings the card closer to showing `text` and `buttons`; `None` once
    /// it shows them. A state without the buttons the card had (the Stop of a running turn) is
    /// the turn's end: the card is redrawn, then streaming turned off.
    pub fn step(&self, text: &str, buttons: &[Button]) -> Option<Step> {
        if values(buttons) != self.buttons || (!self.streaming && text != self.text) {
            return Some(Step::Replace(card::streaming(text, buttons, self.streaming)));
        }
        if text != self.text {
            return Some(Step::Text(text.to_owned()));
        }
        if self.streaming && self.ends(buttons) {
            return Some(Step::StopStreaming);
        }
        None
    }

    /// `step` was done: the card shows its result.
    pub fn done(&mut self, step: &Step, text: &str, buttons: &[Button]) {
        match step {
            Step::Text(_) | Step::Replace(_) => {
                self.text = text.to_owned();
                // Remembered: the buttons are gone, and streaming must still be turned off.
                self.ended = self.ends(buttons);
                self.buttons = values(buttons);
            }
            Step::StopStreaming => self.streaming = false,
        }
    }

    /// Showing `buttons` ends the turn: the card had buttons (a running turn's Stop) and loses
    /// them, or lost them already.
    fn ends(&self, buttons: &[Button]) -> bool {
        self.ended || (!self.buttons.is_empty() && buttons.is_empty())
    }
}

fn values(buttons: &[Button]) -> Vec<Value> {
    buttons.iter().map(|b| b.value.encode()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feishu::card::ButtonValue;

    fn stop() -> Vec<Button> {
        vec![Button { label: "Stop".into(), value: ButtonValue::Stop(7) }]
    }

    /// Plays `states` on a card opened showing `first`: the requests made, in order.
    fn play(first: (&str, Vec<Button>), states: &[(&str, Vec<Button>)]) -> (Vec<Step>, Stream) {
        let mut stream = Stream::new("ck_1".into(), first.0, &first.1, Instant::now());
        let mut steps = Vec::new();
        for (text, buttons) in states {
            while let Some(step) = stream.step(text, buttons) {
                stream.done(&step, text, buttons);
                steps.push(step);
                assert!(steps.len() < 20, "a state is reached in a few steps");
            }
        }
        (steps, stream)
    }

    #[test]
    fn text_streams_button_changes_redraw_and_the_end_stops_streaming() {
        let (steps, mut stream) = play(
            ("Codex is working…", vec![]),
            &[
                ("Codex is working…", stop()),
                ("Codex is running `ls`", stop()),
                ("Codex is running `ls`", stop()),
                ("Codex finished", vec![]),
                ("Codex finished", vec![]),
            ],
        );
        let kinds: Vec<&str> = steps
            .iter()
            .map(|s| match s {
                Step::Text(_) => "text",
                Step::Replace(_) => "replace",
                Step::StopStreaming => "stop",
            })
            .collect();
        assert_eq!(kinds, ["replace", "text", "replace", "stop"], "{steps:?}");
        assert_eq!(steps[1], Step::Text("Codex is running `ls`".into()));
        let Step::Replace(last) = &steps[2] else { unreachable!() };
        assert_eq!(last["body"]["elements"].as_array().map(Vec::len), Some(1), "the Stop is gone");
        assert_eq!(last["body"]["elements"][0]["text"]["content"], "Codex finished");
        assert!(!stream.streaming);
        assert_eq!(
            stream.step("Codex stopped", &[]),
            Some(Step::Replace(card::streaming("Codex stopped", &[], false)))
        );
        assert_eq!((stream.next_sequence(), stream.next_sequence()), (1, 2), "sequences grow");
    }

    #[test]
    fn a_status_without_buttons_so_far_keeps_streaming_and_rotates_in_time() {
        let now = Instant::now();
        let stream = Stream::new("ck_1".into(), "Codex is working…", &[], now);
        assert_eq!(stream.step("Codex is working…", &[]), None);
        let later = now + ROTATE_AFTER;
        assert!(stream.due_for_rotation(&stop(), later, ROTATE_AFTER));
        assert!(!stream.due_for_rotation(&stop(), now, ROTATE_AFTER));
        let running = Stream::new("ck_2".into(), "running", &stop(), now);
        assert!(!running.due_for_rotation(&[], later, ROTATE_AFTER), "the end is not worth a new card");
    }

    #[test]
    fn the_card_keeps_the_buttons_values_for_callbacks() {
        let card = card::streaming("Codex is running `ls`", &stop(), true);
        assert_eq!(card["schema"], "2.0");
        assert_eq!(card["config"]["streaming_mode"], true);
        assert_eq!(card["body"]["elements"][0]["element_id"], card::STATUS_ELEMENT);
        let value = &card["body"]["elements"][1]["behaviors"][0]["value"];
        assert_eq!(ButtonValue::decode(value), Some(ButtonValue::Stop(7)));
    }
}
