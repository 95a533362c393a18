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
#[allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]
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

    /// The fields of a message in the contract: (number, name, label, type, type name).
    fn contract_fields(message: &str) -> Vec<(i32, String, i32, i32, String)> {
        use prost_types::FileDescriptorSet;
        let set = FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let found = set
            .file
            .iter()
            .filter(|file| file.package() == "tsunagu.v1")
            .flat_map(|file| &file.message_type)
            .find(|described| described.name() == message)
            .unwrap_or_else(|| panic!("tsunagu.v1.{message} is not in the contract"));
        found
            .field
            .iter()
            .map(|field| {
                (
                    field.number(),
                    field.name().to_owned(),
                    field.label() as i32,
                    field.r#type() as i32,
                    field.type_name().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn the_hand_written_page_encodes_every_field_of_the_contracts_list_events_response() {
        use prost_types::field_descriptor_proto::{Label, Type};
        // ListEventsPage is written by hand; a field added to events.proto must be added there
        // too, or the hub would drop it without a word. This fails until it is.
        assert_eq!(
            contract_fields("ListEventsResponse"),
            vec![
                (
                    1,
                    "events".to_owned(),
                    Label::Repeated as i32,
                    Type::Message as i32,
                    ".tsunagu.v1.FeedEvent".to_owned()
                ),
                (
                    2,
                    "last_cursor".to_owned(),
                    Label::Optional as i32,
                    Type::Uint64 as i32,
                    String::new()
                ),
                (
                    3,
                    "acknowledged_cursor".to_owned(),
                    Label::Optional as i32,
                    Type::Uint64 as i32,
                    String::new()
                ),
            ],
            "events.proto's ListEventsResponse changed: update served::ListEventsPage to match"
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
