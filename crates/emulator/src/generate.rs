//! The deterministic demo org generator (`--users N --seed S`). (To be implemented.)
