//! Between the cdr crate's unsigned values and the signed 64-bit columns.
//!
//! Neither SQLite nor PostgreSQL has an unsigned 64-bit integer. Snowflake
//! ids keep bit 63 clear until 2087 and millisecond times until the year
//! 292 million, so `i64` holds them; the conversions still check, because
//! an id can also come parsed from a URL.

use cdr::{Id, UnixMillis};

use crate::db::Row;
use crate::error::StoreError;

pub(crate) fn db_u64(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { field, value })
}

pub(crate) fn db_id(field: &'static str, id: Id) -> Result<i64, StoreError> {
    db_u64(field, id.as_u64())
}

pub(crate) fn db_ms(field: &'static str, at: UnixMillis) -> Result<i64, StoreError> {
    db_u64(field, at.as_millis())
}

pub(crate) fn db_opt_ms(
    field: &'static str,
    at: Option<UnixMillis>,
) -> Result<Option<i64>, StoreError> {
    at.map(|at| db_ms(field, at)).transpose()
}

fn unsigned(column: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value} is negative")))
}

pub(crate) fn get_u64(row: &impl Row, column: &str) -> Result<u64, StoreError> {
    unsigned(column, row.int(column)?)
}

pub(crate) fn get_opt_u64(row: &impl Row, column: &str) -> Result<Option<u64>, StoreError> {
    row.opt_int(column)?
        .map(|value| unsigned(column, value))
        .transpose()
}

pub(crate) fn get_u16(row: &impl Row, column: &str) -> Result<u16, StoreError> {
    let value = row.int(column)?;
    u16::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{column} = {value} out of range")))
}

pub(crate) fn get_u32(row: &impl Row, column: &str) -> Result<u32, StoreError> {
    let value = row.int(column)?;
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{column} = {value} out of range")))
}

pub(crate) fn get_id<T: From<Id>>(row: &impl Row, column: &str) -> Result<T, StoreError> {
    get_u64(row, column).map(|raw| T::from(Id::from_u64(raw)))
}

pub(crate) fn get_opt_id(row: &impl Row, column: &str) -> Result<Option<Id>, StoreError> {
    get_opt_u64(row, column).map(|raw| raw.map(Id::from_u64))
}

pub(crate) fn get_ms(row: &impl Row, column: &str) -> Result<UnixMillis, StoreError> {
    get_u64(row, column).map(UnixMillis)
}

pub(crate) fn get_opt_ms(row: &impl Row, column: &str) -> Result<Option<UnixMillis>, StoreError> {
    get_opt_u64(row, column).map(|at| at.map(UnixMillis))
}

/// A vocabulary column, parsed with the enum's own parser.
pub(crate) fn get_spelled<T, E: std::fmt::Display>(
    row: &impl Row,
    column: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    let text = row.text(column)?;
    parse(&text).map_err(|error| StoreError::Corrupt(format!("{column}: {error}")))
}
