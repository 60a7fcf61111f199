//! Parameter types from Rust values, for statements sent unnamed in one
//! round trip (behind a transaction pooler).
//!
//! A named statement learns its parameter types from the server (Parse,
//! then Describe, before the values are bound). Unnamed and in one round
//! trip there is no such answer to wait for, so the types are declared with
//! the Parse: each value's type is the first of [`CANDIDATES`] its `ToSql`
//! accepts (`i32` is `int4`, `&str` is `text`, `Uuid` is `uuid`,
//! `DateTime<Utc>` is `timestamptz`...). The server converts from there as
//! it would a typed literal (`int4` against an `int8` column, `text` into
//! `varchar`); where it cannot, the statement fails with the server's error,
//! and a cast in the SQL or `query_typed` with explicit types is the fix.
//! This is what pgx calls its `exec` mode.

use bytes::BytesMut;
use tokio_postgres::types::{ToSql, Type, WrongType};

use crate::error::Error;

/// The types tried for a parameter, in order: where a Rust type accepts
/// several, the first is the one a column of that kind most often has.
const CANDIDATES: &[Type] = &[
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::OID,
    Type::CHAR,
    Type::TEXT,
    Type::BYTEA,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMP,
    Type::DATE,
    Type::TIME,
    Type::INTERVAL,
    Type::UUID,
    Type::JSONB,
    Type::JSON,
    Type::INET,
    Type::CIDR,
    Type::MACADDR,
    Type::POINT,
    Type::BOX,
    Type::PATH,
    Type::VARBIT,
    Type::BOOL_ARRAY,
    Type::INT2_ARRAY,
    Type::INT4_ARRAY,
    Type::INT8_ARRAY,
    Type::FLOAT4_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::NUMERIC_ARRAY,
    Type::OID_ARRAY,
    Type::CHAR_ARRAY,
    Type::TEXT_ARRAY,
    Type::BYTEA_ARRAY,
    Type::TIMESTAMPTZ_ARRAY,
    Type::TIMESTAMP_ARRAY,
    Type::DATE_ARRAY,
    Type::UUID_ARRAY,
    Type::JSONB_ARRAY,
    Type::INET_ARRAY,
];

/// The type declared for one value: the first candidate its `ToSql`
/// accepts. `ToSql::accepts` cannot be called through `dyn ToSql`, so each
/// candidate is tried by encoding the value for it; only a wrong-type
/// refusal moves on (any other encoding error will come back when the
/// value is sent, and is reported then).
fn type_of(value: &dyn ToSql, position: usize, scratch: &mut BytesMut) -> Result<Type, Error> {
    CANDIDATES
        .iter()
        .find(|ty| {
            scratch.clear();
            match value.to_sql_checked(ty, scratch) {
                Ok(_) => true,
                Err(error) => !error.is::<WrongType>(),
            }
        })
        .cloned()
        .ok_or_else(|| Error::unknown_parameter_type(position))
}

/// Each parameter with its declared type.
pub(crate) fn typed<'p>(
    params: &[&'p (dyn ToSql + Sync)],
) -> Result<Vec<(&'p (dyn ToSql + Sync), Type)>, Error> {
    let mut scratch = BytesMut::new();
    params.iter().enumerate().map(|(i, value)| Ok((*value, type_of(*value, i + 1, &mut scratch)?))).collect()
}

/// [`typed`] for parameters given as an iterator (the `_raw` methods).
pub(crate) fn typed_borrowed<'p>(params: &'p [&'p dyn ToSql]) -> Result<Vec<(&'p dyn ToSql, Type)>, Error> {
    let mut scratch = BytesMut::new();
    params.iter().enumerate().map(|(i, value)| Ok((*value, type_of(*value, i + 1, &mut scratch)?))).collect()
}

/// Reads `rows` to the end and returns how many rows the statement changed
/// (what `execute` returns), for statements sent as `query_typed_raw`.
pub(crate) async fn rows_affected(rows: tokio_postgres::RowStream) -> Result<u64, tokio_postgres::Error> {
    use futures_core::Stream;
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
        row?;
    }
    Ok(rows.rows_affected().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_rust_values_get_their_natural_types() {
        let values: [&(dyn ToSql + Sync); 8] =
            [&true, &1_i16, &1_i32, &1_i64, &1.5_f64, &"x", &vec![1_u8], &Some(3_i32)];
        let types: Vec<Type> = typed(&values).unwrap().into_iter().map(|(_, ty)| ty).collect();
        assert_eq!(
            types,
            [
                Type::BOOL,
                Type::INT2,
                Type::INT4,
                Type::INT8,
                Type::FLOAT8,
                Type::TEXT,
                Type::BYTEA,
                Type::INT4
            ]
        );
        let arrays: [&(dyn ToSql + Sync); 2] = [&vec![1_i64], &vec![String::from("a")]];
        let types: Vec<Type> = typed(&arrays).unwrap().into_iter().map(|(_, ty)| ty).collect();
        assert_eq!(types, [Type::INT8_ARRAY, Type::TEXT_ARRAY]);
    }

    #[test]
    fn a_value_of_no_known_type_is_refused_by_position() {
        #[derive(Debug)]
        struct Custom;
        impl ToSql for Custom {
            fn to_sql(
                &self,
                _: &Type,
                _: &mut bytes::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                Ok(tokio_postgres::types::IsNull::Yes)
            }
            fn accepts(ty: &Type) -> bool {
                ty.name() == "my_enum"
            }
            tokio_postgres::types::to_sql_checked!();
        }
        let values: [&(dyn ToSql + Sync); 2] = [&1_i32, &Custom];
        let error = typed(&values).unwrap_err().to_string();
        assert!(error.contains("$2") && error.contains("query_typed"), "{error}");
    }
}
