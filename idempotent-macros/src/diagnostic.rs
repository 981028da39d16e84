//! Collecting compile errors and suggesting names for typos.

/// Compile errors gathered from every step, so that one build reports all of them.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn extend(&mut self, other: Self) {
        if let Some(error) = other.0 {
            self.push(error);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Returns each error's message, in the order pushed.
    #[cfg(test)]
    pub(crate) fn messages(self) -> Vec<String> {
        self.0
            .into_iter()
            .flatten()
            .map(|error| error.to_string())
            .collect()
    }

    /// Returns one `compile_error!` per error, or nothing when no error was pushed.
    pub(crate) fn into_compile_error(self) -> proc_macro2::TokenStream {
        self.0
            .map(syn::Error::into_compile_error)
            .unwrap_or_default()
    }
}

/// Returns the candidate closest to `name` when it is near enough to be a typo of it.
///
/// A candidate is near enough when its edit distance to `name`, ignoring case, is at most a
/// third of the length of `name` (and at least 1), the threshold rustc uses for its own
/// "did you mean" suggestions.
pub(crate) fn closest_match<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    let threshold = name.chars().count().max(3) / 3;
    candidates
        .iter()
        .map(|candidate| {
            let distance = edit_distance(&name, &candidate.to_ascii_lowercase());
            (distance, *candidate)
        })
        .filter(|(distance, _)| *distance <= threshold)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Returns the edit distance between `a` and `b` in characters, counting an insertion, a
/// deletion, a substitution or a swap of two adjacent characters as one edit (the restricted
/// Damerau-Levenshtein distance).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // distances[i][j] is the distance between the first i characters of `a` and the first j
    // characters of `b`.
    let mut distances = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in distances.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, distance) in distances[0].iter_mut().enumerate() {
        *distance = j;
    }

    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = distances[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut distance = substitution
                .min(distances[i - 1][j] + 1)
                .min(distances[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                distance = distance.min(distances[i - 2][j - 2] + 1);
            }
            distances[i][j] = distance;
        }
    }
    distances[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("ttl", "ttl"), 0);
        assert_eq!(edit_distance("tll", "ttl"), 1);
        assert_eq!(edit_distance("tl", "ttl"), 1);
        assert_eq!(edit_distance("ttls", "ttl"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("wiat", "wait"), 1);
    }

    #[test]
    fn closest_match_suggests_typos_only() {
        let names = ["ttl", "lock_timeout", "required", "header"];

        assert_eq!(closest_match("tll", &names), Some("ttl"));
        assert_eq!(closest_match("TTL", &names), Some("ttl"));
        assert_eq!(closest_match("lock_timout", &names), Some("lock_timeout"));
        assert_eq!(closest_match("requird", &names), Some("required"));
        assert_eq!(closest_match("headers", &names), Some("header"));
        assert_eq!(closest_match("timeout", &names), None);
        assert_eq!(closest_match("x", &names), None);
    }
}
