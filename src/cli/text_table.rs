//! Plain-text tables for people: left-aligned columns two spaces apart, shared by `plan` and
//! `demo`.

/// Renders `rows` (the first one is the header) as aligned columns, one line each.
pub fn render(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn columns_line_up_and_lines_have_no_trailing_space() {
        let rows = vec![
            vec!["NAME".to_owned(), "COST".to_owned()],
            vec!["droplet-one".to_owned(), "24.00".to_owned()],
            vec!["d2".to_owned(), String::new()],
        ];
        assert_eq!(render(&rows), "NAME         COST\ndroplet-one  24.00\nd2\n");
        assert_eq!(render(&[]), "");
    }
}
