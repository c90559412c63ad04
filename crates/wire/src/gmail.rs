//! Gmail API v1 wire types (messages, drafts). Filled in by the mail work.
