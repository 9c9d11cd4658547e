//! Everything printed on stdout: Docker-style tables for people, pretty JSON for
//! scripts. Rendering is pure (it takes "now" as an argument) so that tests can pin
//! every column.

pub mod container;
pub mod network;
pub mod time;

use serde::Serialize;

/// Renders rows under `headers` the way Docker's tabwriter does (minimum cell width 10,
/// padding 3, last column unpadded), so that scripts written for Docker's layout and
/// people's eyes both feel at home. Ends with a newline.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    const MIN_WIDTH: usize = 10;
    const PADDING: usize = 3;
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate().take(columns) {
            line.push_str(cell);
            if index + 1 < columns {
                let cell_width = (widths[index] + PADDING).max(MIN_WIDTH);
                line.extend(std::iter::repeat_n(' ', cell_width - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Pretty JSON with a final newline, as `docker inspect` prints it.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("output values serialise");
    text.push('\n');
    text
}

/// The 12-hex short form of an id, unless the user asked for full ids.
pub fn short_id(id: &str, no_trunc: bool) -> &str {
    if no_trunc { id } else { id.get(..12).unwrap_or(id) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_like_docker() {
        let rows = vec![
            vec!["0123456789ab".into(), "bridge".into(), "bridge".into(), "local".into()],
            vec!["ba9876543210".into(), "vswitch01".into(), "bridge".into(), "local".into()],
        ];
        let text = table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows);
        assert_eq!(
            text,
            "NETWORK ID     NAME        DRIVER    SCOPE\n\
             0123456789ab   bridge      bridge    local\n\
             ba9876543210   vswitch01   bridge    local\n"
        );
    }

    #[test]
    fn empty_table_is_just_the_header() {
        assert_eq!(table(&["A", "B"], &[]), "A         B\n");
    }

    #[test]
    fn short_ids() {
        let id = "0123456789abcdef";
        assert_eq!(short_id(id, false), "0123456789ab");
        assert_eq!(short_id(id, true), id);
        assert_eq!(short_id("abc", false), "abc");
    }
}
