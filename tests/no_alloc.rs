//! Decoding allocates nothing: a counting global allocator watches the reader go through a
//! large document with long text and opaque values.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use easync::wbxml::{Event, Reader, Tag, Writer};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SYNC: Tag = Tag::new(0, 0x05);
const COMMANDS: Tag = Tag::new(0, 0x16);
const ADD: Tag = Tag::new(0, 0x07);
const SERVER_ID: Tag = Tag::new(0, 0x0D);
const BODY: Tag = Tag::new(17, 0x0A);
const DATA: Tag = Tag::new(17, 0x0B);
const CONVERSATION_ID: Tag = Tag::new(22, 0x09);

fn document() -> Vec<u8> {
    let body = "Lorem ipsum dolor sit amet, é € 😀\r\n".repeat(30_000); // ~1.1 MB
    let mut w = Writer::new(Vec::new());
    w.start(SYNC).unwrap();
    w.start(COMMANDS).unwrap();
    for i in 0..200 {
        w.start(ADD).unwrap();
        w.text_element(SERVER_ID, &format!("5:{i}")).unwrap();
        w.start(CONVERSATION_ID).unwrap();
        w.opaque(&[i as u8; 5000]).unwrap();
        w.end().unwrap();
        w.start(BODY).unwrap();
        if i % 50 == 0 {
            w.text_element(DATA, &body).unwrap();
        } else {
            w.empty(DATA).unwrap();
        }
        w.end().unwrap();
        w.end().unwrap();
    }
    w.end().unwrap();
    w.end().unwrap();
    w.finish().unwrap()
}

#[test]
fn decoding_allocates_nothing() {
    let doc = document();
    assert!(doc.len() > 4_000_000);
    // The counter does count: one allocation shows.
    let probe_before = ALLOCATIONS.load(Ordering::SeqCst);
    drop(std::hint::black_box(vec![1u8; 16]));
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst) - probe_before, 1);

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut reader = Reader::<&[u8], 4096, 16>::new(&doc[..]);
    let (mut events, mut text, mut opaque) = (0u64, 0u64, 0u64);
    loop {
        match reader.next().expect("the document is valid") {
            Event::Eof => break,
            Event::Text(t) => text += t.len() as u64,
            Event::OpaqueData(d) => opaque += d.len() as u64,
            _ => {}
        }
        events += 1;
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(after - before, 0, "the reader allocated while decoding");
    assert_eq!(opaque, 200 * 5000);
    assert!(text > 4_000_000, "{text}");
    assert!(events > 2000);
}
