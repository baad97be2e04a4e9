//! A pre-check that bounds the nesting depth of field tables and arrays before amq-protocol
//! parses them.
//!
//! amq-protocol's field-table parser recurses once per nested table or array, several nom
//! stack frames deep each time. A few hundred levels (about 7 bytes each on the wire, so a
//! couple of kilobytes: less than the minimum frame size) overflow a 2 MiB thread stack in a
//! debug build, and a stack overflow aborts the whole process. So before a method or content
//! header goes to amq-protocol, this module walks the tables it contains with the same
//! grammar and refuses anything nested deeper than [`MAX_TABLE_DEPTH`].
//!
//! The walker accepts the same value types as amq-protocol (RabbitMQ's table of types). Any
//! input it rejects as malformed, amq-protocol would reject too, so callers report its
//! errors as syntax errors.

/// The deepest nesting of field tables and arrays accepted in a method's arguments or a
/// message's `headers` property: the top-level table is depth 1. Real clients use 2 or 3.
pub const MAX_TABLE_DEPTH: usize = 32;

/// Why a table was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableError {
    /// The encoding is malformed (truncated, unknown type octet, length overrun).
    Malformed,
    /// Nested deeper than [`MAX_TABLE_DEPTH`].
    TooDeep,
}

impl TableError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            TableError::Malformed => "malformed field table",
            TableError::TooDeep => "field tables nested too deeply",
        }
    }
}

/// A cursor over a byte slice that never panics.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], TableError> {
        if n > self.buf.len() {
            return Err(TableError::Malformed);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, TableError> {
        match self.take(1)? {
            [b] => Ok(*b),
            _ => Err(TableError::Malformed),
        }
    }

    pub(crate) fn u16(&mut self) -> Result<u16, TableError> {
        match self.take(2)? {
            [a, b] => Ok(u16::from_be_bytes([*a, *b])),
            _ => Err(TableError::Malformed),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, TableError> {
        match self.take(4)? {
            [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => Err(TableError::Malformed),
        }
    }

    /// A short string: `u8` length + bytes.
    pub(crate) fn short_str(&mut self) -> Result<&'a [u8], TableError> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// A long string: `u32` length + bytes.
    pub(crate) fn long_str(&mut self) -> Result<&'a [u8], TableError> {
        let n = self.u32()?;
        self.take(usize::try_from(n).map_err(|_| TableError::Malformed)?)
    }
}

/// Walks one field table (`u32` length + entries) at `depth` (1 for a top-level table).
pub(crate) fn skip_table(cur: &mut Cursor<'_>, depth: usize) -> Result<(), TableError> {
    if depth > MAX_TABLE_DEPTH {
        return Err(TableError::TooDeep);
    }
    let mut body = Cursor::new(cur.long_str()?);
    while !body.is_empty() {
        body.short_str()?;
        skip_value(&mut body, depth)?;
    }
    Ok(())
}

/// Walks one field array (`u32` length + values) at `depth`.
fn skip_array(cur: &mut Cursor<'_>, depth: usize) -> Result<(), TableError> {
    if depth > MAX_TABLE_DEPTH {
        return Err(TableError::TooDeep);
    }
    let mut body = Cursor::new(cur.long_str()?);
    while !body.is_empty() {
        skip_value(&mut body, depth)?;
    }
    Ok(())
}

/// Walks one typed value (type octet + value) found inside a container at `depth`.
pub(crate) fn skip_value(cur: &mut Cursor<'_>, depth: usize) -> Result<(), TableError> {
    let fixed = match cur.u8()? {
        b't' | b'b' | b'B' => 1,
        b's' | b'U' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'L' | b'l' | b'd' | b'T' => 8,
        b'D' => 5,
        b'V' => 0,
        b'S' | b'x' => {
            cur.long_str()?;
            return Ok(());
        }
        b'A' => return skip_array(cur, depth + 1),
        b'F' => return skip_table(cur, depth + 1),
        _ => return Err(TableError::Malformed),
    };
    cur.take(fixed).map(|_| ())
}

/// One field of a method's argument list, as far as the walk needs to know it.
#[derive(Clone, Copy)]
enum Field {
    /// A fixed number of octets (shorts, bit groups, ...).
    Fixed(usize),
    /// A short string.
    Short,
    /// A long string.
    Long,
    /// A field table.
    Table,
}

use Field::{Fixed, Long, Short, Table};

/// The argument layouts (after the class and method ids) of the 0-9-1 methods that carry a
/// field table; every other method has none.
fn table_layout(class_id: u16, method_id: u16) -> Option<&'static [Field]> {
    Some(match (class_id, method_id) {
        // connection.start: version-major, version-minor, server-properties, mechanisms, locales
        (10, 10) => &[Fixed(2), Table, Long, Long],
        // connection.start-ok: client-properties, mechanism, response, locale
        (10, 11) => &[Table, Short, Long, Short],
        // exchange.declare: ticket, exchange, type, bits, arguments
        (40, 10) => &[Fixed(2), Short, Short, Fixed(1), Table],
        // exchange.bind / unbind: ticket, destination, source, routing-key, no-wait, arguments
        (40, 30) | (40, 40) => &[Fixed(2), Short, Short, Short, Fixed(1), Table],
        // queue.declare: ticket, queue, bits, arguments
        (50, 10) => &[Fixed(2), Short, Fixed(1), Table],
        // queue.bind: ticket, queue, exchange, routing-key, no-wait, arguments
        (50, 20) => &[Fixed(2), Short, Short, Short, Fixed(1), Table],
        // queue.unbind: ticket, queue, exchange, routing-key, arguments
        (50, 50) => &[Fixed(2), Short, Short, Short, Table],
        // basic.consume: ticket, queue, consumer-tag, bits, arguments
        (60, 20) => &[Fixed(2), Short, Short, Fixed(1), Table],
        _ => return None,
    })
}

/// Checks the tables inside a method's arguments (`args` is the payload after the class
/// and method ids).
pub(crate) fn check_method(class_id: u16, method_id: u16, args: &[u8]) -> Result<(), TableError> {
    let Some(layout) = table_layout(class_id, method_id) else {
        return Ok(());
    };
    let mut cur = Cursor::new(args);
    for field in layout {
        match field {
            Fixed(n) => {
                cur.take(*n)?;
            }
            Short => {
                cur.short_str()?;
            }
            Long => {
                cur.long_str()?;
            }
            Table => skip_table(&mut cur, 1)?,
        }
    }
    Ok(())
}

/// Checks the `headers` table of basic properties (`props` starts at the property flags).
pub(crate) fn check_basic_properties(props: &[u8]) -> Result<(), TableError> {
    let mut cur = Cursor::new(props);
    let flags = cur.u16()?;
    if flags & (1 << 15) != 0 {
        cur.short_str()?; // content-type
    }
    if flags & (1 << 14) != 0 {
        cur.short_str()?; // content-encoding
    }
    if flags & (1 << 13) != 0 {
        skip_table(&mut cur, 1)?; // headers
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_tables(depth: usize) -> Vec<u8> {
        let mut table: Vec<u8> = vec![0, 0, 0, 0];
        for _ in 1..depth {
            let mut entry = vec![1u8, b'k', b'F'];
            entry.extend_from_slice(&table);
            table = (entry.len() as u32).to_be_bytes().to_vec();
            table.extend_from_slice(&entry);
        }
        table
    }

    #[test]
    fn depth_limit_is_exact() {
        let ok = nested_tables(MAX_TABLE_DEPTH);
        assert_eq!(skip_table(&mut Cursor::new(&ok), 1), Ok(()));
        let deep = nested_tables(MAX_TABLE_DEPTH + 1);
        assert_eq!(
            skip_table(&mut Cursor::new(&deep), 1),
            Err(TableError::TooDeep)
        );
    }

    #[test]
    fn arrays_count_as_nesting() {
        // 'A' arrays nested 40 deep inside one table entry.
        let mut value: Vec<u8> = vec![b'A', 0, 0, 0, 0];
        for _ in 0..40 {
            let mut v = vec![b'A'];
            v.extend_from_slice(&(value.len() as u32).to_be_bytes());
            v.extend_from_slice(&value);
            value = v;
        }
        let mut entry = vec![1u8, b'k'];
        entry.extend_from_slice(&value);
        let mut table = (entry.len() as u32).to_be_bytes().to_vec();
        table.extend_from_slice(&entry);
        assert_eq!(
            skip_table(&mut Cursor::new(&table), 1),
            Err(TableError::TooDeep)
        );
    }

    #[test]
    fn malformed_tables() {
        // Length overruns the input.
        assert_eq!(
            skip_table(&mut Cursor::new(&[0, 0, 0, 9, 1]), 1),
            Err(TableError::Malformed)
        );
        // Unknown type octet 'Z'.
        assert_eq!(
            skip_table(&mut Cursor::new(&[0, 0, 0, 3, 1, b'k', b'Z']), 1),
            Err(TableError::Malformed)
        );
        // A value cut short inside the table.
        assert_eq!(
            skip_table(&mut Cursor::new(&[0, 0, 0, 4, 1, b'k', b'I', 0]), 1),
            Err(TableError::Malformed)
        );
    }
}
