//! The meeting pack's HTML (`pack::render`, `Format::Html`): whatever text the pack carries
//! (sealed notes, plans and names another agency wrote, codes and names from the hub), the page
//! holds only the renderer's own tags and attributes. Text never becomes markup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsunagu_client::pack::{
    self, CaseView, Content, DecisionView, Format, PackView, ReferralRow, RegistrationView,
    SummaryView, TimelineEntry,
};
use tsunagu_proto::v1 as pb;

/// The only elements and attributes the renderer writes (client/src/pack/html.rs).
const TAGS: &[&str] = &[
    "html", "head", "meta", "title", "style", "body", "div", "section", "h1", "h2", "h3", "h4",
    "p", "span", "br", "ul", "li", "table", "thead", "tbody", "tr", "th", "td",
];
const ATTRIBUTES: &[&str] = &["lang", "charset", "name", "content", "http-equiv", "class", "id"];

/// Texts cut from the input, handed out in turn (the empty text once they run out).
struct Texts<'a> {
    parts: std::slice::Split<'a, u8, fn(&u8) -> bool>,
}

impl Texts<'_> {
    fn next(&mut self) -> String {
        self.parts
            .next()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .unwrap_or_default()
    }

    fn content(&mut self) -> Content {
        let text = self.next();
        match text.len() % 3 {
            0 => Content::Opened(text),
            1 if text.len() > 3 => Content::Unreadable,
            _ => Content::Opened(text),
        }
    }

    fn decision(&mut self) -> DecisionView {
        DecisionView {
            held_on: self.next(),
            outcome: self.next(),
            lead_agency: self.next(),
            next_review_on: self.next(),
            recorded_by: self.next(),
            plan: self.content(),
        }
    }
}

/// Checks that every tag in `html` is one the renderer writes, with its own attributes only.
fn only_own_markup(html: &str) {
    let bytes = html.as_bytes();
    let mut i = 0;
    while let Some(offset) = html[i..].find('<') {
        let start = i + offset + 1;
        let rest = &html[start..];
        if rest.starts_with("!DOCTYPE html>") {
            i = start;
            continue;
        }
        let closing = rest.starts_with('/');
        let name_start = if closing { start + 1 } else { start };
        let name_end = html[name_start..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(html.len(), |n| name_start + n);
        let name = &html[name_start..name_end];
        assert!(TAGS.contains(&name), "a tag the renderer never writes: <{name}");
        // Attributes up to the closing '>', values in double quotes.
        let mut j = name_end;
        loop {
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            assert!(j < bytes.len(), "an unclosed <{name}> tag");
            if bytes[j] == b'>' {
                break;
            }
            let attr_end = html[j..]
                .find(|c: char| c == '=' || c == '>' || c.is_ascii_whitespace())
                .map_or(html.len(), |n| j + n);
            let attribute = &html[j..attr_end];
            assert!(
                ATTRIBUTES.contains(&attribute),
                "an attribute the renderer never writes: <{name} {attribute}"
            );
            j = attr_end;
            if bytes.get(j) == Some(&b'=') {
                assert_eq!(bytes.get(j + 1), Some(&b'"'), "an unquoted value in <{name}>");
                let close = html[j + 2..].find('"').expect("a closed attribute value");
                j = j + 2 + close + 1;
            }
        }
        i = j;
        if name == "style" && !closing {
            // CSS of the renderer's own: skip to its end.
            i += html[i..].find("</style>").expect("the style element ends");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let separator: fn(&u8) -> bool = |b| *b == 0xff;
    let mut t = Texts {
        parts: data.split(separator),
    };
    let kind = match data.first().map_or(0, |b| b % 3) {
        0 => pb::MeetingKind::Practitioners,
        1 => pb::MeetingKind::IndividualCase,
        _ => pb::MeetingKind::Representatives,
    };
    let case = |t: &mut Texts<'_>, number: usize| CaseView {
        number,
        case_id: t.next(),
        short_id: t.next(),
        category: t.next(),
        stage: t.next(),
        header: t.content(),
        registration: RegistrationView {
            registered_on: t.next(),
            registered_by: t.next(),
            status: t.next(),
            justification: t.next(),
            review_interval_days: 90,
            last_reviewed_on: t.next(),
            next_review_on: t.next(),
            lead_agency: t.next(),
            key_person: t.content(),
        },
        participants: vec![t.next(), t.next()],
        triggers: vec![t.next()],
        referrals: vec![ReferralRow {
            short_id: t.next(),
            from: t.next(),
            to: t.next(),
            purpose: t.next(),
            urgency: t.next(),
            basis: t.next(),
            sent_at: t.next(),
            delivery: t.next(),
            response: t.next(),
            connection: t.next(),
            confirmed: t.next(),
            overdue: vec![t.next()],
            open: number % 2 == 0,
        }],
        open_referrals: 1,
        overdue_handoffs: 1,
        escalations: vec![t.next()],
        review_period_start: t.next(),
        timeline: vec![TimelineEntry {
            at: t.next(),
            actor: t.next(),
            attested: number % 2 == 1,
            what: t.next(),
            contents: vec![("note", t.content()), ("body", t.content())],
        }],
        decision: Some(t.decision()),
        previous_decisions: vec![t.decision()],
        roles: t.content(),
        support_plan: Some(t.content()),
        plan_source: Some(t.next()),
    };
    let first = case(&mut t, 1);
    let second = case(&mut t, 2);
    let view = PackView {
        kind,
        meeting_id: t.next(),
        municipality: t.next(),
        held_on: t.next(),
        generated_at: t.next(),
        scheduled_by: t.next(),
        reader: Some(t.next()),
        summary: SummaryView {
            cases: 2,
            needing_decision: vec![(1, t.next(), t.next())],
            ..SummaryView::default()
        },
        cases: vec![first, second],
        unreadable: 1,
    };
    only_own_markup(&pack::render(&view, Format::Html));
    // The Markdown output must not panic either.
    let _ = pack::render(&view, Format::Markdown);
});
