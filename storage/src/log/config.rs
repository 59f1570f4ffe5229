//! Every limit of the log, with its default, in one place.
//!
//! `LogConfig::validate` runs when a log is opened: a value outside the limits below is refused
//! with the field's name, instead of showing up later as a segment that can never hold a record or
//! a buffer that cannot be allocated. The format's own limit (`RECORD_PAYLOAD_BYTES_LIMIT`) lives
//! with the format in `record.rs`, since files written under any configuration must stay readable.

use thiserror::Error;

use super::record::{RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_LIMIT};

/// Default size at which the active segment is sealed and a new one started (64 MiB): large
/// enough that the per-segment costs (a file, a map, an fsync of the directory) are rare, small
/// enough that retention frees space in useful steps.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 << 20;
/// Largest segment size accepted (1 GiB): a sealed segment is mapped whole.
pub const SEGMENT_BYTES_MAX_LIMIT: u64 = 1 << 30;
/// Smallest segment size accepted: room for one header and a little payload (tests use tiny
/// segments to exercise rolling).
pub const SEGMENT_BYTES_MAX_MIN: u64 = 2 * RECORD_HEADER_BYTES as u64;
/// Default largest payload of one appended record (1 MiB).
pub const RECORD_BYTES_MAX_DEFAULT: u32 = 1 << 20;
/// Default bytes buffered by the writer before it writes to the file (64 KiB).
pub const WRITE_BUFFER_BYTES_DEFAULT: usize = 64 << 10;
/// Largest write buffer accepted (64 MiB).
pub const WRITE_BUFFER_BYTES_LIMIT: usize = 64 << 20;
/// Default distance in bytes between two entries of a segment's sparse in-memory index (4 KiB, as
/// Kafka's `index.interval.bytes`): a random read walks at most this far past an indexed record.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u64 = 4 << 10;
/// Largest index interval accepted (1 MiB).
pub const INDEX_INTERVAL_BYTES_LIMIT: u64 = 1 << 20;

/// Sizes of one log. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The active segment is sealed before a record would take it beyond this size.
    pub segment_bytes_max: u64,
    /// Largest payload `append` accepts; header plus this must fit in one segment.
    pub record_bytes_max: u32,
    /// Bytes the writer buffers before writing them to the file.
    pub write_buffer_bytes: usize,
    /// Bytes between two entries of a segment's sparse index.
    pub index_interval_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            record_bytes_max: RECORD_BYTES_MAX_DEFAULT,
            write_buffer_bytes: WRITE_BUFFER_BYTES_DEFAULT,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
        }
    }
}

/// A configuration value outside its limits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("log config: {field} = {value} is out of range: {rule}")]
pub struct LogConfigError {
    /// The field.
    pub field: &'static str,
    /// Its value.
    pub value: u64,
    /// The limit it breaks.
    pub rule: &'static str,
}

impl LogConfig {
    /// Checks every field against its limits.
    pub fn validate(&self) -> Result<(), LogConfigError> {
        let refuse = |field, value, rule| Err(LogConfigError { field, value, rule });
        if !(SEGMENT_BYTES_MAX_MIN..=SEGMENT_BYTES_MAX_LIMIT).contains(&self.segment_bytes_max) {
            return refuse("segment_bytes_max", self.segment_bytes_max, "between SEGMENT_BYTES_MAX_MIN and SEGMENT_BYTES_MAX_LIMIT");
        }
        if self.record_bytes_max == 0 || self.record_bytes_max > RECORD_PAYLOAD_BYTES_LIMIT {
            return refuse("record_bytes_max", self.record_bytes_max.into(), "between 1 and RECORD_PAYLOAD_BYTES_LIMIT");
        }
        if RECORD_HEADER_BYTES as u64 + u64::from(self.record_bytes_max) > self.segment_bytes_max {
            return refuse("record_bytes_max", self.record_bytes_max.into(), "a header and the largest payload must fit in one segment");
        }
        if self.write_buffer_bytes == 0 || self.write_buffer_bytes > WRITE_BUFFER_BYTES_LIMIT {
            return refuse("write_buffer_bytes", self.write_buffer_bytes as u64, "between 1 and WRITE_BUFFER_BYTES_LIMIT");
        }
        if self.index_interval_bytes == 0 || self.index_interval_bytes > INDEX_INTERVAL_BYTES_LIMIT {
            return refuse("index_interval_bytes", self.index_interval_bytes, "between 1 and INDEX_INTERVAL_BYTES_LIMIT");
        }
        Ok(())
    }
}

/// Which sealed segments `Log::apply_retention` deletes; the active segment is never deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Delete the oldest sealed segments while the log holds more bytes than this.
    pub bytes_max: Option<u64>,
    /// Delete sealed segments whose records all lie below this offset.
    pub retain_from_offset: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(LogConfig::default().validate(), Ok(()));
    }

    #[test]
    fn each_out_of_range_field_is_named() {
        let cases: [(LogConfig, &str); 6] = [
            (LogConfig { segment_bytes_max: 10, ..LogConfig::default() }, "segment_bytes_max"),
            (LogConfig { segment_bytes_max: SEGMENT_BYTES_MAX_LIMIT + 1, ..LogConfig::default() }, "segment_bytes_max"),
            (LogConfig { record_bytes_max: 0, ..LogConfig::default() }, "record_bytes_max"),
            (LogConfig { segment_bytes_max: 1024, record_bytes_max: 1024, ..LogConfig::default() }, "record_bytes_max"),
            (LogConfig { write_buffer_bytes: 0, ..LogConfig::default() }, "write_buffer_bytes"),
            (LogConfig { index_interval_bytes: 0, ..LogConfig::default() }, "index_interval_bytes"),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field, field, "{config:?}");
        }
    }

    #[test]
    fn the_largest_record_may_fill_a_segment_exactly() {
        let config = LogConfig { segment_bytes_max: 128, record_bytes_max: 100, ..LogConfig::default() };
        assert_eq!(config.validate(), Ok(()));
    }
}
