//! Bounded CBOR encoding and decoding shared by every wire type.

use serde::{Serialize, de::DeserializeOwned};

use crate::limits::MAX_NESTING;

/// Why bytes could not be decoded into a wire type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is longer than the bound for this type.
    #[error("input of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The bound it broke.
        max: usize,
    },
    /// The bytes are not valid CBOR for the expected type.
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// The input nests deeper than [`MAX_NESTING`].
    #[error("nesting deeper than {MAX_NESTING}")]
    TooDeep,
    /// Valid CBOR was followed by extra bytes.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A collection holds more items than allowed.
    #[error("{what}: {count} items exceed the limit of {max}")]
    TooMany {
        /// Which collection.
        what: &'static str,
        /// How many items it held.
        count: usize,
        /// The bound it broke.
        max: usize,
    },
    /// A field holds a value outside its allowed range or shape.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The bytes do not start with the expected magic and version.
    #[error("unknown format or version")]
    BadMagic,
}

/// Encodes a value as CBOR, appending to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and every wire type serializes without error.
    if let Err(error) = ciborium::ser::into_writer(value, out) {
        encoding_failed(&error);
    }
}

/// Encodes a value as CBOR.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

#[cold]
fn encoding_failed<E: std::fmt::Debug>(error: &E) {
    debug_assert!(false, "CBOR encoding into memory failed: {error:?}");
}

/// Decodes exactly one CBOR value of type `T` from `bytes`, which must not exceed `max_len`.
///
/// Nesting is limited to [`MAX_NESTING`]; byte and text strings grow only as input is read,
/// so a forged length never allocates more than the input holds.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<T, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let mut reader = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_NESTING).map_err(
        |error| match error {
            ciborium::de::Error::RecursionLimitExceeded => DecodeError::TooDeep,
            other => DecodeError::Malformed(other.to_string()),
        },
    )?;
    if !reader.is_empty() {
        return Err(DecodeError::TrailingBytes(reader.len()));
    }
    Ok(value)
}

/// Fails with [`DecodeError::TooMany`] when `count` exceeds `max`.
pub fn check_count(what: &'static str, count: usize, max: usize) -> Result<(), DecodeError> {
    if count > max {
        return Err(DecodeError::TooMany { what, count, max });
    }
    Ok(())
}

/// A sequence that refuses, while decoding, to hold more than `N` items.
///
/// Use it for every list that comes off the wire, so a frame of many tiny items cannot
/// turn into a large allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BoundedVec<T, const N: usize>(Vec<T>);

impl<T, const N: usize> BoundedVec<T, N> {
    /// Wraps `items`, failing if there are more than `N`.
    pub fn new(items: Vec<T>) -> Result<Self, DecodeError> {
        check_count("list", items.len(), N)?;
        Ok(Self(items))
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// Unwraps the items.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T, const N: usize> Default for BoundedVec<T, N> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T, const N: usize> std::ops::Deref for BoundedVec<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<'de, T: serde::Deserialize<'de>, const N: usize> serde::Deserialize<'de> for BoundedVec<T, N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T, const N: usize>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Visitor<T, N> {
            type Value = BoundedVec<T, N>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a sequence of at most {N} items")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let hint = seq.size_hint().unwrap_or(0);
                if hint > N {
                    return Err(serde::de::Error::invalid_length(hint, &self));
                }
                let mut items = Vec::with_capacity(hint.min(64));
                while let Some(item) = seq.next_element()? {
                    if items.len() == N {
                        return Err(serde::de::Error::invalid_length(N + 1, &self));
                    }
                    items.push(item);
                }
                Ok(BoundedVec(items))
            }
        }

        deserializer.deserialize_seq(Visitor::<T, N>(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_vec_refuses_one_item_too_many() {
        let ok = encode(&vec![1u8; 4]);
        assert_eq!(
            decode::<BoundedVec<u8, 4>>(&ok, 1024).map(BoundedVec::into_vec),
            Ok(vec![1; 4])
        );
        let too_many = encode(&vec![1u8; 5]);
        assert!(matches!(
            decode::<BoundedVec<u8, 4>>(&too_many, 1024),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn trailing_bytes_and_deep_nesting_are_rejected() {
        let mut bytes = encode(&7u32);
        bytes.push(0);
        assert_eq!(
            decode::<u32>(&bytes, 64),
            Err(DecodeError::TrailingBytes(1))
        );

        // 64 nested one-element arrays around an integer.
        let mut deep = vec![0x81u8; 64];
        deep.push(0x01);
        assert_eq!(
            decode::<ciborium::Value>(&deep, 1024),
            Err(DecodeError::TooDeep)
        );
    }

    #[test]
    fn a_forged_huge_length_does_not_allocate_it() {
        // A byte string claiming 2^62 bytes, followed by nothing.
        let forged = [0x5b, 0x40, 0, 0, 0, 0, 0, 0, 0];
        assert!(decode::<serde_bytes::ByteBuf>(&forged, 64).is_err());
    }
}
