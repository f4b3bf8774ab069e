use crate::common::Context;
#[allow(dead_code)]
pub fn run(_ctx: Context) -> i32 { 2 }
