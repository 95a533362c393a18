//! The EventService as the hub serves it: feed events go out as the bytes encoded when they were
//! first read, so a page served from memory is neither copied field by field nor encoded again.
//! On the wire these are exactly `tsunagu.v1.FeedEvent` and `tsunagu.v1.ListEventsResponse`;
//! clients use the types of [`crate::v1`].

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{
    DecodeContext, WireType, bytes, encoded_len_varint, key_len, skip_field, uint64,
};
use prost::{DecodeError, Message};

/// The EventService server, generated from the same contract with the two types below in place
/// of `FeedEvent` and `ListEventsResponse`.
mod generated {
    include!(concat!(env!("OUT_DIR"), "/served/tsunagu.v1.rs"));
}
pub use generated::event_service_server;

/// A `tsunagu.v1.FeedEvent`, already encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedFeedEvent(pub Bytes);

impl EncodedFeedEvent {
    /// Encodes `event` once.
    pub fn encode(event: &crate::v1::FeedEvent) -> Self {
        Self(Bytes::from(event.encode_to_vec()))
    }
}

impl Message for EncodedFeedEvent {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    /// Only the hub sends this type and never decodes it; decoding goes through the plain
    /// message, so it is correct if slow.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let mut event = crate::v1::FeedEvent::decode(self.0.clone())?;
        event.merge_field(tag, wire_type, buf, ctx)?;
        *self = Self::encode(&event);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0 = Bytes::new();
    }
}

/// A `tsunagu.v1.ListEventsResponse` whose events are already encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListEventsPage {
    /// `events = 1`, in order.
    pub events: Vec<EncodedFeedEvent>,
    /// `last_cursor = 2`.
    pub last_cursor: u64,
    /// `acknowledged_cursor = 3`.
    pub acknowledged_cursor: u64,
}

impl Message for ListEventsPage {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for event in &self.events {
            bytes::encode(1, &event.0, buf);
        }
        if self.last_cursor != 0 {
            uint64::encode(2, &self.last_cursor, buf);
        }
        if self.acknowledged_cursor != 0 {
            uint64::encode(3, &self.acknowledged_cursor, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => {
                let mut event = Bytes::new();
                bytes::merge(wire_type, &mut event, buf, ctx)?;
                self.events.push(EncodedFeedEvent(event));
                Ok(())
            }
            2 => uint64::merge(wire_type, &mut self.last_cursor, buf, ctx),
            3 => uint64::merge(wire_type, &mut self.acknowledged_cursor, buf, ctx),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let events: usize = self
            .events
            .iter()
            .map(|event| key_len(1) + encoded_len_varint(event.0.len() as u64) + event.0.len())
            .sum();
        let cursor = |tag, value: &u64| {
            if *value == 0 {
                0
            } else {
                uint64::encoded_len(tag, value)
            }
        };
        events + cursor(2, &self.last_cursor) + cursor(3, &self.acknowledged_cursor)
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

    use super::*;
    use crate::v1;

    fn feed_event(cursor: u64) -> v1::FeedEvent {
        v1::FeedEvent {
            cursor,
            event_id: format!("event-{cursor}"),
            kind: 2,
            case_id: "case".to_owned(),
            referral_id: "referral".to_owned(),
            note_id: String::new(),
            recorded_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            referral_event: Some(v1::ReferralEvent {
                event_id: "referral-event".to_owned(),
                actor_agency: "hospital".to_owned(),
                ..v1::ReferralEvent::default()
            }),
        }
    }

    #[test]
    fn a_page_of_encoded_events_is_the_same_bytes_as_the_plain_response() {
        let events: Vec<_> = (1..=3).map(feed_event).collect();
        let plain = v1::ListEventsResponse {
            events: events.clone(),
            last_cursor: 3,
            acknowledged_cursor: 1,
        };
        let page = ListEventsPage {
            events: events.iter().map(EncodedFeedEvent::encode).collect(),
            last_cursor: 3,
            acknowledged_cursor: 1,
        };
        assert_eq!(page.encode_to_vec(), plain.encode_to_vec());
        assert_eq!(page.encoded_len(), plain.encoded_len());
        let decoded = v1::ListEventsResponse::decode(page.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, plain);
    }

    #[test]
    fn an_empty_page_is_the_same_bytes_as_the_plain_response() {
        let page = ListEventsPage::default();
        assert_eq!(page.encoded_len(), 0);
        assert_eq!(
            page.encode_to_vec(),
            v1::ListEventsResponse::default().encode_to_vec()
        );
    }

    /// One field as the hand-written code encodes and decodes it: number, name, whether it is
    /// repeated, wire type in the contract, and the message type for message fields.
    struct HandField {
        number: i32,
        name: &'static str,
        repeated: bool,
        kind: Type,
        message: &'static str,
    }

    /// Every message of events.proto that this module writes by hand instead of prost, with the
    /// fields its `encode_raw`, `merge_field` and `encoded_len` handle. `FeedEvent` is not here:
    /// [`EncodedFeedEvent`] carries the bytes the generated `v1::FeedEvent` encoded, so it has
    /// every field of the contract by construction.
    const HAND_WRITTEN: &[(&str, &str, &[HandField])] = &[(
        "ListEventsResponse",
        "served::ListEventsPage",
        &[
            HandField {
                number: 1,
                name: "events",
                repeated: true,
                kind: Type::Message,
                message: ".tsunagu.v1.FeedEvent",
            },
            HandField {
                number: 2,
                name: "last_cursor",
                repeated: false,
                kind: Type::Uint64,
                message: "",
            },
            HandField {
                number: 3,
                name: "acknowledged_cursor",
                repeated: false,
                kind: Type::Uint64,
                message: "",
            },
        ],
    )];

    /// Messages whose generated type build.rs swaps for a type of this module (its
    /// `extern_path(".tsunagu.v1.<Message>", "crate::served::...")` lines).
    fn swapped_in_build_rs() -> Vec<String> {
        include_str!("../build.rs")
            .split("extern_path(")
            .skip(1)
            .filter_map(|call| {
                let call: String = call.split_whitespace().collect();
                let message = call.strip_prefix("\".tsunagu.v1.")?;
                let (message, rest) = message.split_once('"')?;
                rest.contains("crate::served::").then(|| message.to_owned())
            })
            .collect()
    }

    /// The messages of events.proto, from the descriptor set the build compiled.
    fn events_proto() -> Vec<DescriptorProto> {
        let set = FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        set.file
            .into_iter()
            .find(|file| file.name() == "tsunagu/v1/events.proto")
            .expect("tsunagu/v1/events.proto is in the descriptor set")
            .message_type
    }

    /// Every way the hand-written messages differ from events.proto, one line each.
    fn differences(
        contract: &[DescriptorProto],
        hand_written: &[(&str, &str, &[HandField])],
    ) -> Vec<String> {
        let mut found = Vec::new();
        for &(message, rust, fields) in hand_written {
            let Some(described) = contract.iter().find(|m| m.name() == message) else {
                found.push(format!(
                    "{rust} stands for tsunagu.v1.{message}, which events.proto does not define"
                ));
                continue;
            };
            for field in &described.field {
                let what = format!(
                    "events.proto's {message}.{} = {} ({:?}{})",
                    field.name(),
                    field.number(),
                    field.r#type(),
                    if field.type_name().is_empty() {
                        String::new()
                    } else {
                        format!(" {}", field.type_name())
                    },
                );
                let Some(hand) = fields.iter().find(|hand| hand.number == field.number()) else {
                    found.push(format!(
                        "{what} is missing from {rust}: add it to its struct, encode_raw, \
                         merge_field and encoded_len, and to HAND_WRITTEN here"
                    ));
                    continue;
                };
                let repeated = field.label() == Label::Repeated;
                if hand.name != field.name()
                    || hand.repeated != repeated
                    || hand.kind != field.r#type()
                    || hand.message != field.type_name()
                {
                    found.push(format!(
                        "{what} does not match {rust}'s field {} `{}` ({}{:?} {})",
                        hand.number,
                        hand.name,
                        if hand.repeated { "repeated " } else { "" },
                        hand.kind,
                        hand.message,
                    ));
                }
                // The hand-written encoding leaves out zero values, which is only right for
                // fields without explicit presence.
                if field.proto3_optional() {
                    found.push(format!(
                        "{what} is `optional` (explicit presence), which {rust} does not encode"
                    ));
                }
            }
            for hand in fields {
                if !described.field.iter().any(|f| f.number() == hand.number) {
                    found.push(format!(
                        "{rust} has field {} `{}`, which events.proto's {message} does not",
                        hand.number, hand.name
                    ));
                }
            }
        }
        found
    }

    #[test]
    fn every_hand_written_message_has_exactly_the_fields_of_events_proto() {
        // ListEventsPage is written by hand; a field added to events.proto must be added there
        // too, or the hub would drop it without a word. This fails, naming the field, until it is.
        let found = differences(&events_proto(), HAND_WRITTEN);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }

    #[test]
    fn every_message_build_rs_swaps_for_a_served_type_is_checked_here() {
        let mut swapped = swapped_in_build_rs();
        swapped.sort();
        let mut covered: Vec<String> = HAND_WRITTEN
            .iter()
            .map(|(message, _, _)| (*message).to_owned())
            .chain(["FeedEvent".to_owned()])
            .collect();
        covered.sort();
        assert_eq!(
            swapped, covered,
            "build.rs swaps these messages for types of served.rs; each needs its fields in \
             HAND_WRITTEN (or, like FeedEvent, to carry the generated type's own encoding)"
        );
    }

    #[test]
    fn a_field_events_proto_adds_is_named_as_missing() {
        // The guard above must really catch a new field: add one to a copy of the contract.
        let mut contract = events_proto();
        let response = contract
            .iter_mut()
            .find(|m| m.name() == "ListEventsResponse")
            .unwrap();
        // A number and name the contract does not use yet, so this keeps working after it grows.
        let number = response.field.iter().map(|f| f.number()).max().unwrap_or(0) + 1;
        response.field.push(FieldDescriptorProto {
            name: Some("added_by_this_test".to_owned()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(Type::Uint32 as i32),
            ..FieldDescriptorProto::default()
        });
        let found = differences(&contract, HAND_WRITTEN);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(&format!(
                "events.proto's ListEventsResponse.added_by_this_test = {number} (Uint32)"
            )) && found[0].contains("missing from served::ListEventsPage"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn an_encoded_event_decodes_back_to_the_event() {
        let event = feed_event(7);
        let encoded = EncodedFeedEvent::encode(&event);
        assert_eq!(encoded.encoded_len(), event.encoded_len());
        let again = EncodedFeedEvent::decode(encoded.encode_to_vec().as_slice()).unwrap();
        assert_eq!(again, encoded);
        assert_eq!(v1::FeedEvent::decode(again.0).unwrap(), event);
    }
}
