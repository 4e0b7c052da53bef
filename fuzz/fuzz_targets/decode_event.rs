//! Fuzz event decoding and the whole handler on arbitrary bytes: no panic, and a direct batch
//! always gets one result per item.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use fraudflow::artifact::ArtifactStore;
use fraudflow::config::Config;
use fraudflow::handler::handle_payload;
use fraudflow::scoring::Scorer;
use fraudflow::service::Service;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let config = Config::from_lookup(|name| (name == "FRAUDFLOW_EMF").then(|| "false".to_owned())).expect("config");
        // The heuristic answers (no model): decoding and the answer path are what is fuzzed.
        Service::assemble(config, ArtifactStore::local_only(), Scorer::new(), None)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<Value>(data) else { return };
    let items = payload.get("transactions").and_then(Value::as_array).map(Vec::len);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let response = runtime.block_on(handle_payload(payload, service(), Instant::now(), None));
    if let (Some(count), Ok(response)) = (items, response) {
        if let Some(results) = response.get("results").and_then(Value::as_array) {
            assert_eq!(results.len(), count, "one result per item");
        }
    }
});
