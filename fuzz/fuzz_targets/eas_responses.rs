//! Every command's response reader on any bytes: a reader may refuse the input, never panic,
//! and what it streams to sinks stays within the input's size.
#![no_main]

use easync::eas::item::LargeValue;
use easync::eas::itemops::{DataKind, ItemRef, SinkChooser};
use easync::eas::sync::{ClientResponse, CollectionHeader, ServerChange, SyncHandler};
use easync::eas::{self, Limits, Parser, Sink};
use easync::eas::{compose, estimate, find, folder, itemops, meeting, moveitems, multipart};
use easync::eas::{ping, provision, resolve, search, settings, sync};
use libfuzzer_sys::fuzz_target;

/// Counts what it is given and keeps nothing.
#[derive(Default)]
struct Counting {
    bytes: u64,
}

impl Sink for Counting {
    fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.bytes += data.len() as u64;
        Ok(())
    }
}

impl SinkChooser for Counting {
    fn sink(&mut self, _item: &ItemRef, _kind: DataKind) -> &mut dyn Sink {
        self
    }
}

impl SyncHandler for Counting {
    fn server_change(&mut self, _c: &str, _change: ServerChange) -> eas::Result<()> {
        Ok(())
    }
    fn client_response(&mut self, _c: &str, _r: ClientResponse) -> eas::Result<()> {
        Ok(())
    }
    fn body_sink(&mut self, _c: &str, _s: &str, _v: &LargeValue) -> Option<&mut dyn Sink> {
        Some(self)
    }
    fn end_collection(&mut self, _h: &CollectionHeader) -> eas::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_value: 4096,
        max_tree_nodes: 256,
        max_entries: 256,
    };
    let mut p = Parser::with_limits(body, limits);
    let mut sinks = Counting::default();
    let _ = match which % 19 {
        0 => provision::read_response(&mut p).map(drop),
        1 => settings::read_response(&mut p).map(drop),
        2 => folder::read_folder_sync_response(&mut p).map(drop),
        3 => folder::read_folder_create_response(&mut p).map(drop),
        4 => folder::read_folder_update_response(&mut p).map(drop),
        5 => folder::read_folder_delete_response(&mut p).map(drop),
        6 => sync::read_response(&mut p, &mut sinks).map(drop),
        7 => ping::read_response(&mut p).map(drop),
        8 => estimate::read_response(&mut p).map(drop),
        9 => itemops::read_response(&mut p, &mut sinks).map(drop),
        10 => compose::read_response(&mut p, &compose::Kind::SendMail).map(drop),
        11 => moveitems::read_response(&mut p).map(drop),
        12 => meeting::read_response(&mut p).map(drop),
        13 => search::read_response(&mut p, search::StoreKind::Gal, &mut sinks).map(drop),
        14 => search::read_response(&mut p, search::StoreKind::Mailbox, &mut sinks).map(drop),
        15 => resolve::read_response(&mut p).map(drop),
        16 => find::read_response(&mut p).map(drop),
        _ => match multipart::MultipartReader::new(body, 16, Some(body.len() as u64)) {
            Ok(mut parts) => itemops::read_multipart_response(&mut parts, limits, &mut sinks).map(drop),
            Err(e) => Err(e),
        },
    };
    // Streamed data comes out of the input: base64 decoding only shrinks it.
    assert!(sinks.bytes <= body.len() as u64);
});
