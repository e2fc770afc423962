//! How large a memory map of the data file to ask for. The map itself (and the
//! `unsafe` it needs, with its soundness argument) is `etcdkit_fs::Map`.

/// bbolt's mmap size rule: powers of two from 32 KiB to 1 GiB, then whole GiB
/// steps, rounded to the page size.
pub(crate) fn mmap_size(size: usize, page_size: usize) -> usize {
    for i in 15..=30 {
        if size <= 1usize << i {
            return 1usize << i;
        }
    }
    const STEP: usize = 1 << 30;
    let mut sz = size.div_ceil(STEP) * STEP;
    if !sz.is_multiple_of(page_size) {
        sz = (sz / page_size + 1) * page_size;
    }
    sz
}
