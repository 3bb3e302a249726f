//! Glob patterns (`*`: any run, `?`: one character, else literal), as identities' allowed
//! actions, source grants' subjects and alert rules name actions and actors.

/// Whether `text` matches the glob `pattern` (`*`: any run, `?`: one character, else literal).
///
/// Greedy with one backtrack point: O(len(pattern) × len(text)) at worst, no recursion, so a
/// hostile pattern cannot blow the stack or take exponential time.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was, and the text position it is currently taken to end at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and try again.
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}
