// `plain` has no `#[berth::http]` (or trigger) attribute, so there is no function definition
// for the group to export.
async fn plain() {}

berth::group!(plain);

fn main() {}
