//! Pages for what went wrong, each saying what to do: the hub cannot be reached, the
//! certificate was refused, a key changed since it was verified, the hub refused a write (a
//! legal-basis refusal explained in Japanese, with the hub's own message beside it).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::ClientError;

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    advice: &'a str,
    detail: &'a str,
    back: &'a str,
}

/// An error page with a status, a title and what to do.
pub fn refusal(status: StatusCode, title: &str, advice: &str) -> Response {
    render(status, title, advice, "", "")
}

fn render(status: StatusCode, title: &str, advice: &str, detail: &str, back: &str) -> Response {
    let page = ErrorPage {
        title,
        advice,
        detail,
        back,
    };
    let html = page
        .render()
        .unwrap_or_else(|_| "<!DOCTYPE html><title>エラー</title>エラー".to_owned());
    (status, Html(html)).into_response()
}

/// Why a page could not be shown or a form not carried out.
#[derive(Debug)]
pub enum PageError {
    /// The item does not exist or the caller may not see it (the same page for both).
    NotFound,
    /// The hub cannot be reached.
    Unreachable(String),
    /// The hub refused this agency's certificate or identity.
    Identity(String),
    /// A key verified out of band changed.
    KeyChanged(String),
    /// The hub refused the request; its message.
    Refused { message: String, back: String },
    /// The form was filled in wrongly; what to correct.
    Invalid { message: String, back: String },
    /// Anything else: logged, not shown.
    Internal(String),
}

impl PageError {
    pub fn invalid(message: impl Into<String>, back: &str) -> Self {
        PageError::Invalid {
            message: message.into(),
            back: back.to_owned(),
        }
    }

    /// The same error, with the page to go back to.
    pub fn with_back(self, back: &str) -> Self {
        match self {
            PageError::Refused { message, .. } => PageError::Refused {
                message,
                back: back.to_owned(),
            },
            PageError::Invalid { message, .. } => PageError::Invalid {
                message,
                back: back.to_owned(),
            },
            other => other,
        }
    }
}

impl From<ClientError> for PageError {
    fn from(error: ClientError) -> Self {
        match &error {
            ClientError::Connect { detail, .. } => {
                let lower = detail.to_ascii_lowercase();
                if [
                    "certificate",
                    "alert",
                    "handshake",
                    "connection closed",
                    "reset by peer",
                ]
                .iter()
                .any(|word| lower.contains(word))
                {
                    PageError::Identity(detail.clone())
                } else {
                    PageError::Unreachable(detail.clone())
                }
            }
            ClientError::KeyChanged { .. } | ClientError::UnknownFingerprint { .. } => {
                PageError::KeyChanged(error.to_string())
            }
            ClientError::NoAgeKey { agency } => PageError::Refused {
                message: format!(
                    "{agency} は暗号化の鍵を公開していないため、この機関宛てに封をできません。{agency} に `tsunagu keys init` の実行を依頼してください。"
                ),
                back: String::new(),
            },
            ClientError::Rpc(status) => match status.code() {
                tonic::Code::Unauthenticated => PageError::Identity(status.message().to_owned()),
                tonic::Code::PermissionDenied
                    if status.message().contains("suspended")
                        || status.message().contains("revoked") =>
                {
                    PageError::Identity(status.message().to_owned())
                }
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                    PageError::Unreachable(status.message().to_owned())
                }
                tonic::Code::Internal | tonic::Code::Unknown => {
                    PageError::Internal(status.message().to_owned())
                }
                _ => PageError::Refused {
                    message: status.message().to_owned(),
                    back: String::new(),
                },
            },
            _ => PageError::Internal(error.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::NotFound => refusal(
                StatusCode::NOT_FOUND,
                "見つかりません",
                "指定されたものは存在しないか、この機関には閲覧する権限がありません。URLを確認するか、一覧から開いてください。",
            ),
            PageError::Unreachable(detail) => render(
                StatusCode::SERVICE_UNAVAILABLE,
                "ハブに接続できません",
                "ネットワークとハブが動いているかを確認し、しばらくしてから再読み込みしてください。操作の送信中だった場合は、同じ画面から送り直しても二重には記録されません。",
                &detail,
                "",
            ),
            PageError::Identity(detail) => render(
                StatusCode::FORBIDDEN,
                "この機関の証明書がハブに受け付けられません",
                "証明書の有効期限が切れているか、失効しているか、この機関の利用が停止されています。ハブの運用担当者に連絡し、新しい証明書を受け取ったら、ファイルを置き換えてコンソールを起動し直してください。",
                &detail,
                "",
            ),
            PageError::KeyChanged(detail) => render(
                StatusCode::CONFLICT,
                "相手機関の鍵が、確認した後に変わっています",
                "なりすましの可能性があるため、送信を止めました。相手機関に電話など、ハブを通さない方法で新しい鍵の指紋を確認し、`tsunagu keys verify <機関ID> <指紋>` で登録してから、もう一度送信してください。",
                &detail,
                "",
            ),
            PageError::Refused { message, back } => {
                let (title, advice) = explain(&message);
                render(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    title,
                    &advice,
                    &message,
                    &back,
                )
            }
            PageError::Invalid { message, back } => render(
                StatusCode::BAD_REQUEST,
                "入力内容を確認してください",
                &message,
                "",
                &back,
            ),
            PageError::Internal(detail) => {
                tracing::error!(error = %detail, "console request failed");
                refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "処理できませんでした",
                    "内部エラーです。しばらくしてからもう一度お試しください。続くときはハブの運用担当者に連絡してください。",
                )
            }
        }
    }
}

/// A title and advice in Japanese for the hub's refusal of a write.
pub fn explain(message: &str) -> (&'static str, String) {
    let after = |prefix: &str| message.split_once(prefix).map(|(_, rest)| rest.to_owned());
    if let Some(rest) = after("no consent on this case covers sharing with ") {
        let (who, why) = rest.split_once(": ").unwrap_or((&rest, ""));
        let (recipient, purpose) = who.split_once(" for ").unwrap_or((who, ""));
        let why = if why.contains("no consent records") {
            "このケースには同意の記録がありません。".to_owned()
        } else {
            "記録されている同意は、この共有先・目的・期間を含んでいないか、撤回されています。"
                .to_owned()
        };
        return (
            "法的根拠がないため送信できません",
            format!(
                "{recipient} への「{}」の共有を認める同意がありません。{why}ケースの画面で同意を記録するか、要対協での共有などの別の法的根拠と、その理由を選んでください。",
                super::super::view::purpose(purpose)
            ),
        );
    }
    if message.contains("needs the case to be registered with the 要対協") {
        return (
            "法的根拠がないため送信できません",
            "要対協での共有を根拠にするには、このケースが要対協に登録されている必要があります。調整機関に登録を依頼するか、別の法的根拠を選んでください。".to_owned(),
        );
    }
    if message.contains("to be a member of the 要対協") {
        return (
            "法的根拠がないため送信できません",
            "要対協での共有を根拠にできるのは、送信元と送信先の両方が要対協の構成機関であるときだけです。同意を記録するか、別の法的根拠を選んでください。".to_owned(),
        );
    }
    if message.contains("may only go to a child guidance centre") {
        return (
            "法的根拠がないため送信できません",
            "虐待通告は、児童相談所または市区町村の調整機関にだけ送れます。送信先を確認してください。".to_owned(),
        );
    }
    if message.contains("needs a written justification") {
        return (
            "理由の記入が必要です",
            "同意以外の法的根拠で共有するときは、その理由（家族を特定しない短い説明）を記入してください。".to_owned(),
        );
    }
    if message.contains("consent") && message.contains("withdrawn") {
        return (
            "同意が撤回されています",
            "この同意は撤回されているため、新しい共有の根拠にはできません。改めて同意を記録するか、別の法的根拠を選んでください。".to_owned(),
        );
    }
    if message.contains("already exists") || message.contains("idempotency") {
        return (
            "この操作はすでに送信されています",
            "同じフォームからの送信は一度だけ記録されます。画面を開き直して、現在の状態を確認してください。".to_owned(),
        );
    }
    (
        "ハブがこの操作を受け付けませんでした",
        "下の理由を確認し、入力を直してからもう一度送信してください。状態が変わっている場合は、画面を再読み込みしてください。".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_consent_is_explained_with_recipient_and_purpose() {
        let (title, advice) = explain(
            "no consent on this case covers sharing with aoba-hospital for postnatal_care: the case has no consent records",
        );
        assert_eq!(title, "法的根拠がないため送信できません");
        assert!(advice.contains("aoba-hospital"), "{advice}");
        assert!(advice.contains("産後ケア"), "{advice}");
        assert!(advice.contains("同意の記録がありません"), "{advice}");
    }

    #[tokio::test]
    async fn a_changed_key_gets_its_own_page_saying_how_to_verify() {
        let error = ClientError::KeyChanged {
            agency: "aoba-hospital".into(),
            verified: vec!["aa".into()],
            active: vec!["bb".into()],
        };
        let response = PageError::from(error).into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.contains("相手機関の鍵が、確認した後に変わっています"),
            "{body}"
        );
        assert!(body.contains("tsunagu keys verify"), "{body}");
    }

    #[test]
    fn an_unknown_refusal_still_says_what_to_do() {
        let (title, advice) = explain("something new");
        assert_eq!(title, "ハブがこの操作を受け付けませんでした");
        assert!(advice.contains("入力を直して"));
    }
}
