//! Client → server frames: parsing with the contract's error semantics. Unknown fields are
//! ignored; anything else that does not fit is a `bad_request` that echoes the frame's `ref`.

use serde::Deserialize;

use super::validate::is_valid_short_id;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Auth {
        token: String,
    },
    Join {
        room: String,
        #[serde(default)]
        since: Option<i64>,
    },
    Leave {
        room: String,
    },
    Send {
        room: String,
        body: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    History {
        room: String,
        #[serde(default)]
        before: Option<i64>,
        #[serde(default)]
        after: Option<i64>,
        #[serde(default)]
        limit: Option<i64>,
    },
    Typing {
        room: String,
    },
    Search {
        room: String,
        query: String,
        #[serde(default)]
        limit: Option<i64>,
    },
    Ping,
}

/// A frame and the `ref` its reply must echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFrame {
    pub reference: Option<String>,
    pub frame: ClientFrame,
}

/// Why a text frame was refused; always answered with `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub reference: Option<String>,
    pub message: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "ref", default)]
    reference: Option<String>,
    #[serde(flatten)]
    frame: ClientFrame,
}

#[derive(Deserialize)]
struct RefOnly {
    #[serde(rename = "ref", default)]
    reference: Option<serde_json::Value>,
}

pub fn parse(text: &str) -> Result<ParsedFrame, FrameError> {
    match serde_json::from_str::<Envelope>(text) {
        Ok(Envelope { reference, frame }) => {
            if let Some(r) = &reference
                && !is_valid_short_id(r)
            {
                return Err(FrameError {
                    reference: None,
                    message: "ref must be a string of 1 to 64 characters".into(),
                });
            }
            Ok(ParsedFrame { reference, frame })
        }
        Err(e) => Err(explain(text, &e)),
    }
}

/// Names the problem and recovers the `ref` when the frame is at least a JSON object.
fn explain(text: &str, error: &serde_json::Error) -> FrameError {
    match serde_json::from_str::<RefOnly>(text) {
        Err(_) => FrameError {
            reference: None,
            message: "frames must be JSON objects".into(),
        },
        Ok(RefOnly { reference }) => FrameError {
            reference: reference
                .and_then(|r| r.as_str().map(str::to_owned))
                .filter(|r| is_valid_short_id(r)),
            message: describe(error),
        },
    }
}

fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    // serde_json appends " at line 1 column 42"; the position helps nobody here.
    let text = text.split(" at line ").next().unwrap_or(&text);
    if text.starts_with("missing field `type`") {
        "missing field `type`".into()
    } else if text.starts_with("unknown variant") {
        format!("unknown frame type: {text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_with_their_ref_and_ignore_unknown_fields() {
        let parsed =
            parse(r#"{"type":"send","room":"general","body":"hi","client_msg_id":"c-1","ref":"r1","x":1}"#)
                .unwrap();
        assert_eq!(parsed.reference.as_deref(), Some("r1"));
        assert_eq!(
            parsed.frame,
            ClientFrame::Send {
                room: "general".into(),
                body: "hi".into(),
                client_msg_id: Some("c-1".into())
            }
        );
        assert_eq!(
            parse(r#"{"type":"ping"}"#).unwrap().frame,
            ClientFrame::Ping
        );
        assert_eq!(
            parse(r#"{"type":"join","room":"a","since":null}"#)
                .unwrap()
                .frame,
            ClientFrame::Join {
                room: "a".into(),
                since: None
            }
        );
    }

    #[test]
    fn bad_frames_say_why_and_keep_the_ref() {
        let e = parse("not json").unwrap_err();
        assert_eq!(e.reference, None);
        assert!(e.message.contains("JSON"));

        let e = parse(r#"{"type":"dance","ref":"r2"}"#).unwrap_err();
        assert_eq!(e.reference.as_deref(), Some("r2"));
        assert!(e.message.contains("unknown frame type"), "{}", e.message);

        let e = parse(r#"{"type":"send","room":"a","ref":"r3"}"#).unwrap_err();
        assert_eq!(e.reference.as_deref(), Some("r3"));
        assert!(e.message.contains("body"), "{}", e.message);

        let e = parse(r#"{"type":"join","room":7}"#).unwrap_err();
        assert!(e.message.contains("invalid type"), "{}", e.message);

        let e = parse(r#"{"room":"a"}"#).unwrap_err();
        assert!(e.message.contains("type"), "{}", e.message);

        let long = "r".repeat(65);
        let e = parse(&format!(r#"{{"type":"ping","ref":"{long}"}}"#)).unwrap_err();
        assert!(e.message.contains("ref"), "{}", e.message);

        assert!(parse("[1,2]").is_err());
    }
}
