//! A fixed-capacity vector: boot-time parsing runs before any allocator exists.

use core::ops::Deref;

/// Up to `N` items of a `Copy` type, stored inline.
#[derive(Clone, Copy)]
pub struct FixedVec<T: Copy + Default, const N: usize> {
    buf: [T; N],
    len: usize,
}

impl<T: Copy + Default, const N: usize> FixedVec<T, N> {
    pub fn new() -> Self {
        FixedVec { buf: [T::default(); N], len: 0 }
    }

    /// Append `v`; gives it back if the vector is full.
    pub fn push(&mut self, v: T) -> Result<(), T> {
        if self.len == N {
            return Err(v);
        }
        self.buf[self.len] = v;
        self.len += 1;
        Ok(())
    }

    /// Insert `v` at `i` (shifting the tail up); gives it back if the vector is full.
    pub fn insert(&mut self, i: usize, v: T) -> Result<(), T> {
        assert!(i <= self.len, "insert index {i} past the end ({})", self.len);
        if self.len == N {
            return Err(v);
        }
        self.buf.copy_within(i..self.len, i + 1);
        self.buf[i] = v;
        self.len += 1;
        Ok(())
    }

    /// Remove and return item `i` (shifting the tail down).
    pub fn remove(&mut self, i: usize) -> T {
        assert!(i < self.len, "remove index {i} past the end ({})", self.len);
        let v = self.buf[i];
        self.buf.copy_within(i + 1..self.len, i);
        self.len -= 1;
        v
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn is_full(&self) -> bool {
        self.len == N
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.buf[..self.len]
    }
}

impl<T: Copy + Default, const N: usize> Default for FixedVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Default, const N: usize> Deref for FixedVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[..self.len]
    }
}

impl<T: Copy + Default + core::fmt::Debug, const N: usize> core::fmt::Debug for FixedVec<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for FixedVec<T, N> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn push_insert_remove_and_capacity() {
        let mut v: FixedVec<u32, 3> = FixedVec::new();
        assert!(v.is_empty());
        v.push(1).unwrap();
        v.push(3).unwrap();
        v.insert(1, 2).unwrap();
        assert_eq!(&*v, &[1, 2, 3]);
        assert_eq!(v.push(4), Err(4));
        assert_eq!(v.insert(0, 0), Err(0));
        assert_eq!(v.remove(0), 1);
        assert_eq!(&*v, &[2, 3]);
        v.clear();
        assert_eq!(v.len(), 0);
    }
}
