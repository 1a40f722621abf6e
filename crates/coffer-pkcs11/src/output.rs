//! The output side of operations that return data into a caller's buffer. PKCS#11 lets the
//! caller ask for the length first (NULL buffer) or pass a buffer that is too short; neither
//! ends the operation, and the next call must produce the same result. The output is therefore
//! computed once, kept in the operation, and handed over when a buffer large enough arrives.

use zeroize::Zeroizing;

use crate::error::Result;

/// What a call hands back to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// The length only (the buffer was NULL): the operation goes on.
    Length(usize),
    /// The buffer was too short (`CKR_BUFFER_TOO_SMALL`, the length is reported): the
    /// operation goes on.
    TooSmall(usize),
    /// The data; the operation is over.
    Data(Zeroizing<Vec<u8>>),
}

impl Delivered {
    /// Whether the operation is finished (the data was handed over).
    pub fn is_final(&self) -> bool {
        matches!(self, Delivered::Data(_))
    }
}

/// Computes the output into `pending` the first time, then delivers it according to the
/// caller's buffer `capacity` (`None`: a length query). The output leaves `pending` only when
/// it is handed over.
pub fn offer(
    pending: &mut Option<Zeroizing<Vec<u8>>>,
    capacity: Option<usize>,
    compute: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<Delivered> {
    let len = match pending {
        Some(out) => out.len(),
        None => {
            let out = Zeroizing::new(compute()?);
            let len = out.len();
            *pending = Some(out);
            len
        }
    };
    Ok(match capacity {
        None => Delivered::Length(len),
        Some(room) if room < len => Delivered::TooSmall(len),
        Some(_) => Delivered::Data(pending.take().unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_computed_once_and_kept_until_delivered() {
        let mut pending = None;
        let mut calls = 0;
        let mut compute = || {
            calls += 1;
            Ok(vec![1, 2, 3])
        };
        assert_eq!(offer(&mut pending, None, &mut compute).unwrap(), Delivered::Length(3));
        assert_eq!(offer(&mut pending, Some(2), &mut compute).unwrap(), Delivered::TooSmall(3));
        let done = offer(&mut pending, Some(3), &mut compute).unwrap();
        assert_eq!(done, Delivered::Data(Zeroizing::new(vec![1, 2, 3])));
        assert!(done.is_final());
        assert!(pending.is_none());
        assert_eq!(calls, 1);
    }
}
