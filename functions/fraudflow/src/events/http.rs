//! API Gateway HTTP API (payload 2.0) and Lambda Function URL requests: the POST body is a
//! direct-invoke request; the answer is an HTTP response with a JSON body.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
use base64::Engine as _;
use serde_json::Value;

use super::{DirectRequest, Limits, RequestError, RequestErrorCode};

/// Decode the envelope and the body into a request, or the error the caller gets (400 / 413).
pub fn decode(payload: Value, limits: &Limits) -> Result<DirectRequest, RequestError> {
    if payload.get("version").and_then(Value::as_str) != Some("2.0") {
        return Err(RequestError::new(
            RequestErrorCode::InvalidEvent,
            "API Gateway REST API events (payload format 1.0) are not supported: use an HTTP API or a Function URL (payload format 2.0)",
        ));
    }
    // Function URL events are the same payload format 2.0 as HTTP APIs.
    let request: ApiGatewayV2httpRequest = serde_json::from_value(payload).map_err(|err| {
        RequestError::new(
            RequestErrorCode::InvalidEvent,
            format!("not an HTTP API / Function URL event: {err}"),
        )
    })?;
    let method = request.request_context.http.method.as_str().to_owned();
    if method != "POST" {
        return Err(RequestError::new(
            RequestErrorCode::InvalidRequest,
            format!("use POST with a JSON body, got {method}"),
        ));
    }
    let Some(body) = request.body else {
        return Err(RequestError::new(
            RequestErrorCode::InvalidJson,
            "the request has no body; send a transaction or {\"transactions\": [...]} as JSON",
        ));
    };
    // Check the size before decoding anything: base64 text is 4/3 of its bytes.
    let approximate = if request.is_base64_encoded {
        body.len() / 4 * 3
    } else {
        body.len()
    };
    if approximate > limits.max_body_bytes {
        return Err(too_large(approximate, limits));
    }
    let bytes = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|err| {
                RequestError::new(
                    RequestErrorCode::InvalidJson,
                    format!("the body is not valid base64: {err}"),
                )
            })?
    } else {
        body.into_bytes()
    };
    if bytes.len() > limits.max_body_bytes {
        return Err(too_large(bytes.len(), limits));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|err| {
        RequestError::new(
            RequestErrorCode::InvalidJson,
            format!("the body is not JSON: {err}"),
        )
    })?;
    DirectRequest::decode(value, limits)
}

fn too_large(size: usize, limits: &Limits) -> RequestError {
    RequestError::new(
        RequestErrorCode::BodyTooLarge,
        format!(
            "the body is {size} bytes; the limit is {} bytes: split the batch",
            limits.max_body_bytes
        ),
    )
}

/// An HTTP response with a JSON body.
pub fn response(status: u16, body: &Value) -> Value {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response.is_base64_encoded = false;
    serde_json::to_value(response).unwrap_or(Value::Null)
}
