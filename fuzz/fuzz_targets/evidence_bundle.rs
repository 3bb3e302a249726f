//! Evidence bundles (`graven export --bundle`, read by `graven verify <file.tar>`).
//!
//! Input: the bytes of a tar file. Properties:
//! - `verify_bundle` never panics and stays within its limits on any input.
//! - A bundle that verifies with its own key verifies the same way when that key is given as
//!   the trusted one, and every event it vouches for lies inside the checkpoint's tree.
#![no_main]

use graven_verify::bundle::verify_bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = verify_bundle(data, None) else { return };
    for &index in &report.events {
        assert!(index < report.tree_size.0, "event {index} outside a tree of {}", report.tree_size.0);
    }
    let again = verify_bundle(data, Some(&report.key)).expect("verifies with the key it verified with");
    assert_eq!(again.events, report.events);
    assert_eq!((again.tree_size, again.root), (report.tree_size, report.root));
});
