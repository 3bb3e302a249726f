//! C2SP `tlog-checkpoint` v1.0.0: origin, tree size, root hash, optional extension lines.

use crate::hash::{Hash, TreeSize};
use crate::note::{self, NoteError, VerifierKey};

/// Why a checkpoint body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("checkpoint text must end with a newline")]
    NoFinalNewline,
    #[error("checkpoint needs at least three lines: origin, tree size, root hash")]
    TooFewLines,
    #[error("checkpoint origin (line 1) is empty")]
    EmptyOrigin,
    #[error("checkpoint contains a control character; only newline is allowed")]
    ControlCharacter,
    #[error("tree size (line 2) {0:?} is not a decimal number without leading zeroes or sign")]
    SizeFormat(String),
    #[error("tree size (line 2) {0:?} does not fit in 64 bits")]
    SizeOverflow(String),
    #[error("root hash (line 3) is not the standard padded base64 of 32 bytes")]
    RootFormat,
    #[error("extension line {0} is empty; extension lines must be non-empty")]
    EmptyExtension(usize),
    #[error("checkpoint is larger than {} bytes", note::MAX_NOTE_SIZE)]
    TooLarge,
}

/// Why a signed checkpoint could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("checkpoint signature: {0}")]
    Note(#[from] NoteError),
    #[error("checkpoint body: {0}")]
    Body(#[from] CheckpointError),
    #[error("checkpoint origin is {found:?} but this log's origin is {expected:?}")]
    OriginMismatch { expected: String, found: String },
}

/// A checkpoint body. Parsing is strict; formatting is the only encoding Graven writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: TreeSize,
    root: Hash,
    extensions: Vec<String>,
}

impl Checkpoint {
    pub fn new(origin: &str, size: TreeSize, root: Hash) -> Result<Self, CheckpointError> {
        Self::with_extensions(origin, size, root, Vec::new())
    }

    pub fn with_extensions(
        origin: &str,
        size: TreeSize,
        root: Hash,
        extensions: Vec<String>,
    ) -> Result<Self, CheckpointError> {
        let c = Checkpoint { origin: origin.to_owned(), size, root, extensions };
        // Round-trip through the parser so that only parseable checkpoints are ever built.
        Self::parse(&c.to_text())
    }

    /// Parses note text (including the final newline).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.len() > note::MAX_NOTE_SIZE {
            return Err(CheckpointError::TooLarge);
        }
        if text.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(CheckpointError::ControlCharacter);
        }
        let body = text.strip_suffix('\n').ok_or(CheckpointError::NoFinalNewline)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(CheckpointError::TooFewLines);
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_size(size)?;
        let root = Hash::from_base64(root).map_err(|_| CheckpointError::RootFormat)?;
        let mut extensions = Vec::new();
        for (i, line) in lines.enumerate() {
            if line.is_empty() {
                return Err(CheckpointError::EmptyExtension(i + 1));
            }
            extensions.push(line.to_owned());
        }
        Ok(Checkpoint { origin: origin.to_owned(), size, root, extensions })
    }

    /// The note text: `origin\nsize\nroot\n[extension\n...]`.
    pub fn to_text(&self) -> String {
        let mut s = format!("{}\n{}\n{}\n", self.origin, self.size.0, self.root.to_base64());
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
    pub fn size(&self) -> TreeSize {
        self.size
    }
    pub fn root(&self) -> Hash {
        self.root
    }
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }
}

fn parse_size(s: &str) -> Result<TreeSize, CheckpointError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(CheckpointError::SizeFormat(s.to_owned()));
    }
    s.parse::<u64>().map(TreeSize).map_err(|_| CheckpointError::SizeOverflow(s.to_owned()))
}

/// A checkpoint whose signature by the log's key verified over the bytes received, and whose
/// body parsed strictly. Only [`VerifiedCheckpoint::open`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    note: Vec<u8>,
}

impl VerifiedCheckpoint {
    /// Verifies `note_bytes` with `log_key` and checks that the origin is `expected_origin`
    /// (usually `log_key.name()`; older logs such as sum.golang.org use another origin).
    pub fn open(note_bytes: &[u8], log_key: &VerifierKey, expected_origin: &str) -> Result<Self, OpenError> {
        let opened = note::open(note_bytes, std::slice::from_ref(log_key))?;
        let checkpoint = Checkpoint::parse(opened.text())?;
        if checkpoint.origin != expected_origin {
            return Err(OpenError::OriginMismatch {
                expected: expected_origin.to_owned(),
                found: checkpoint.origin,
            });
        }
        Ok(VerifiedCheckpoint { checkpoint, note: note_bytes.to_vec() })
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    pub fn size(&self) -> TreeSize {
        self.checkpoint.size
    }
    pub fn root(&self) -> Hash {
        self.checkpoint.root
    }
    /// The signed note exactly as received.
    pub fn note_bytes(&self) -> &[u8] {
        &self.note
    }
}
