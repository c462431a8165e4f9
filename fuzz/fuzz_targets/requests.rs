//! Every gRPC request type, decoded from fuzzer bytes and handed to its service: the first
//! byte picks the method (see `newsstore_fuzz::METHODS`), the rest is the protobuf message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use newsstore_fuzz::Harness;

fuzz_target!(|data: &[u8]| {
    if let Some((&method, message)) = data.split_first() {
        Harness::get().call(method, message);
    }
});
