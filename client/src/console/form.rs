//! A submitted form as name/value pairs (a multi-select gives a name several times), read once
//! by the guard so that it can check the CSRF token before any handler runs.

/// The largest form body accepted (a note or a body text fits many times over).
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// The fields of one submitted `application/x-www-form-urlencoded` form.
#[derive(Clone, Debug, Default)]
pub struct FormData {
    pairs: Vec<(String, String)>,
}

impl FormData {
    /// Parses a form body.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(|pairs| FormData { pairs })
            .map_err(|e| format!("フォームの内容を読み取れません（{e}）"))
    }

    /// The first value of a field, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.trim())
    }

    /// The first value of a field exactly as typed (for texts whose line breaks matter).
    pub fn text(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// Every non-empty value of a field, trimmed.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(key, value)| key == name && !value.trim().is_empty())
            .map(|(_, value)| value.trim().to_owned())
            .collect()
    }

    /// Values given as one comma- or space-separated field, or as the field repeated.
    pub fn list(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for value in self.all(name) {
            for item in value.split([',', ' ', '、', '\n']) {
                let item = item.trim();
                if !item.is_empty() && !out.iter().any(|known| known == item) {
                    out.push(item.to_owned());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_listed_fields_are_all_read() {
        let form = FormData::parse(
            "to=aoba-hospital&to=aoba-nursery&kinds=hospital%2C+nursery&note=%E3%81%82%0A%E3%81%84"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(form.all("to"), ["aoba-hospital", "aoba-nursery"]);
        assert_eq!(form.list("kinds"), ["hospital", "nursery"]);
        assert_eq!(form.text("note"), "あ\nい");
        assert_eq!(form.get("missing"), "");
    }
}
