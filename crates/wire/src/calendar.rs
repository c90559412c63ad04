//! Calendar API v3 wire types (events). Filled in by the calendar work.
