//! The Lambda API's JSON request bodies, as any authenticated caller can send them: each wire
//! shape the front door parses with `wire::parse_body`, then turned into the control plane's input
//! where the front door does that, and every refusal turned into its HTTP answer. Must never panic.
#![no_main]

use axum::response::IntoResponse;
use libfuzzer_sys::fuzz_target;
use updraft_api::error::ApiResult;
use updraft_api::wire::{
    self, AliasWire, CodeInput, ConcurrencyWire, CreateFunctionWire, PublishVersionWire, TagsWire,
    UpdateCodeWire, UpdateConfigWire,
};

/// A refusal becomes a response, its message built from the parser's error.
fn answer<T>(result: ApiResult<T>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let _ = e.into_response();
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // No object store: an `S3Bucket` source is refused as on a node without one.
    let from = wire::CodeFrom {
        objects: None,
        account: "111111111111",
    };
    if let Some(w) = answer(wire::parse_body::<CreateFunctionWire>(data)) {
        answer(w.into_input(&from));
    }
    if let Some(w) = answer(wire::parse_body::<UpdateConfigWire>(data)) {
        answer(w.into_input());
    }
    if let Some(w) = answer(wire::parse_body::<UpdateCodeWire>(data)) {
        // As UpdateFunctionCode reads it.
        answer(wire::decode_code(
            &CodeInput {
                zip_file: w.zip_file,
                s3_bucket: w.s3_bucket,
                s3_key: w.s3_key,
                s3_object_version: None,
                image_uri: w.image_uri,
            },
            &from,
        ));
    }
    answer(wire::parse_body::<PublishVersionWire>(data));
    answer(wire::parse_body::<AliasWire>(data));
    answer(wire::parse_body::<ConcurrencyWire>(data));
    answer(wire::parse_body::<TagsWire>(data));
});
