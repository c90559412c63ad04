//! The integration tests of orgsync-core, in one binary as in every crate of the
//! workspace: each test binary is another link on 2 cores. A new test file is a module
//! here (`tests/it/<module>.rs`), never a new file directly under `tests/`.

mod planner_props;
mod scim_props;
mod shared_lists;
