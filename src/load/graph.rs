//! The steps: each one's kind, its references to other steps (implicit `needs`), the order
//! they run in, and cycles.

use super::*;
use crate::steps::StepRef;

/// One step naming another: in `needs`, or under a key of its kind (`account:`, `cleaning:`),
/// which also says what kind the other step must be.
pub(super) struct Ref {
    from: usize,
    to: Spanned<String>,
    key: &'static str,
    /// (article, kind, hint) when the key requires a kind.
    must_be: Option<(&'static str, &'static str, &'static str)>,
}

impl Loader<'_> {
    pub(super) fn steps(
        &mut self,
        steps: &Spanned<Vec<yaml::Recover<Spanned<StepDoc>>>>,
        broken: &HashSet<String>,
    ) -> Vec<Step> {
        let mut out: Vec<Step> = Vec::new();
        let mut refs: Vec<Ref> = Vec::new();
        for doc in steps.value.iter().filter_map(|s| s.0.as_ref()) {
            if !is_step_id(&doc.id) {
                self.diags.push(
                    Diagnostic::new(format!("`{}` is not a valid step id", doc.id.value))
                        .at(doc.id.span)
                        .hint("use letters, digits, `_` and `-`, starting with a letter"),
                );
            }
            if let Some(first) = out.iter().find(|s| s.id.value == doc.id.value) {
                self.diags.push(
                    Diagnostic::new(format!("duplicate step id `{}`", doc.id.value))
                        .at(doc.id.span)
                        .note(first.id.span, "first used")
                        .hint("step ids name steps in the journal; each must be unique"),
                );
                continue;
            }
            let Some(kind) = self.step_kind(doc) else {
                continue;
            };
            let index = out.len();
            let mut needs: Vec<String> = Vec::new();
            for n in &doc.needs {
                refs.push(Ref {
                    from: index,
                    to: n.clone(),
                    key: "needs",
                    must_be: None,
                });
                if !needs.contains(&n.value) {
                    needs.push(n.value.clone());
                }
            }
            if let Some(StepRef {
                key,
                step,
                kind,
                article,
                hint,
            }) = kind.names_step()
            {
                if !needs.contains(&step.value) {
                    needs.push(step.value.clone());
                }
                refs.push(Ref {
                    from: index,
                    to: step,
                    key,
                    must_be: Some((article, kind, hint)),
                });
            }
            let deadline = doc.deadline.as_ref().and_then(|d| {
                crate::deadline::parse(&d.value)
                    .map_err(|problem| {
                        self.diags.push(
                            Diagnostic::new(format!("`deadline`: {problem}"))
                                .at(d.span)
                                .hint(crate::deadline::FORMS),
                        );
                    })
                    .ok()
            });
            out.push(Step {
                id: doc.id.clone(),
                title: doc.title.clone().unwrap_or_else(|| doc.id.value.clone()),
                needs,
                kind,
                deadline,
            });
        }

        self.check_refs(&mut out, &refs, broken);

        self.order(out, &refs)
    }

    pub(super) fn step_kind(&mut self, doc: &Spanned<StepDoc>) -> Option<StepKind> {
        let mut kinds = doc.value.kinds();
        match kinds.len() {
            1 => kinds.pop().map(|(k, _)| k),
            0 => {
                self.diags.push(
                    Diagnostic::new(format!("step `{}` has no kind", doc.id.value))
                        .at(doc.id.span)
                        .hint(format!(
                            "give it exactly one of: {}",
                            STEP_KINDS
                                .iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                );
                None
            }
            _ => {
                self.diags.push(
                    Diagnostic::new(format!(
                        "step `{}` has {} kinds: {}",
                        doc.id.value,
                        kinds.len(),
                        kinds
                            .iter()
                            .map(|(k, _)| format!("`{}`", k.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .at(kinds[1].1)
                    .hint("a step does one thing; split it into several steps"),
                );
                None
            }
        }
    }

    /// References (`needs`, `account`, `cleaning`) must name a step, and the right kind of
    /// step; a bad one is reported once and dropped from `needs`.
    fn check_refs(&mut self, out: &mut [Step], refs: &[Ref], broken: &HashSet<String>) {
        let mut bad: HashSet<(usize, String)> = HashSet::new();
        for Ref {
            from: index,
            to: target,
            key,
            must_be,
        } in refs
        {
            let step = &out[*index];
            let found = out.iter().find(|s| s.id.value == target.value);
            let problem = match (found, *key) {
                (None, _) if broken.contains(&target.value) => {
                    bad.insert((*index, target.value.clone()));
                    None
                }
                (None, _) => {
                    let hint = match suggest(&target.value, out.iter().map(|s| s.id.value.as_str()))
                    {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "steps are: {}",
                            out.iter()
                                .map(|s| format!("`{}`", s.id.value))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    Some((
                        format!("`{key}` names unknown step `{}`", target.value),
                        hint,
                    ))
                }
                (Some(t), _) if t.id.value == step.id.value => Some((
                    format!("step `{}` cannot need itself", step.id.value),
                    "remove it from `needs`".to_owned(),
                )),
                (Some(t), _) => match must_be {
                    Some((article, kind, hint)) if t.kind.name() != *kind => Some((
                        format!(
                            "`{key}` must name {article} `{kind}` step; `{}` is `{}`",
                            t.id.value,
                            t.kind.name()
                        ),
                        (*hint).to_owned(),
                    )),
                    _ => None,
                },
            };
            if let Some((message, hint)) = problem {
                bad.insert((*index, target.value.clone()));
                self.diags
                    .push(Diagnostic::new(message).at(target.span).hint(hint));
            }
        }
        for (i, step) in out.iter_mut().enumerate() {
            step.needs.retain(|n| !bad.contains(&(i, n.clone())));
        }
    }

    /// Orders steps so each comes after what it needs (declaration order otherwise), and
    /// reports every cycle.
    pub(super) fn order(&mut self, steps: Vec<Step>, refs: &[Ref]) -> Vec<Step> {
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.value.as_str(), i))
            .collect();
        let deps: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| {
                s.needs
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .collect()
            })
            .collect();

        let cycles = find_cycles(&deps);
        let mut in_cycle = vec![false; steps.len()];
        for cycle in &cycles {
            for &i in cycle {
                in_cycle[i] = true;
            }
            // The edge that closes the cycle: from the last step back to the first.
            let last = *cycle.last().expect("non-empty");
            let first = &steps[cycle[0]].id.value;
            let span = refs
                .iter()
                .find(|r| r.from == last && &r.to.value == first)
                .map(|r| r.to.span)
                .unwrap_or(steps[last].id.span);
            let path: Vec<&str> = cycle
                .iter()
                .map(|&i| steps[i].id.value.as_str())
                .chain([first.as_str()])
                .collect();
            // Reported in the direction people read `needs`: a needs b needs … a.
            let mut shown = path.clone();
            shown.reverse();
            self.diags.push(
                Diagnostic::new(format!("dependency cycle: {}", shown.join(" → ")))
                    .at(span)
                    .label("closes the cycle")
                    .hint("each step must be able to run after the steps it needs; remove one of these `needs`"),
            );
        }

        let (mut order, placed) = topological(&deps, &in_cycle);
        // Steps in a cycle cannot be ordered; they go last so that their templates are still
        // checked (the cycle is an error, so this order never runs).
        order.extend((0..steps.len()).filter(|&i| !placed[i]));
        let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
        order.into_iter().filter_map(|i| slots[i].take()).collect()
    }
}

/// Every cycle in the graph (`deps[i]`: what step `i` needs), each once: a depth-first search
/// reporting back edges.
fn find_cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    // Cycles: depth-first search, reporting each back edge once.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; deps.len()];
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        marks[i] = Mark::Active;
        stack.push(i);
        for &d in &deps[i] {
            match marks[d] {
                Mark::New => visit(d, deps, marks, stack, cycles),
                Mark::Active => {
                    let from = stack.iter().position(|&s| s == d).expect("on stack");
                    cycles.push(stack[from..].to_vec());
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
    }
    let mut cycles = Vec::new();
    for i in 0..deps.len() {
        if marks[i] == Mark::New {
            visit(i, deps, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    cycles
}

/// Kahn's algorithm over the steps not in a cycle; returns the order and which were placed.
fn topological(deps: &[Vec<usize>], in_cycle: &[bool]) -> (Vec<usize>, Vec<bool>) {
    let mut placed = vec![false; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    // Kahn's algorithm, taking the earliest-written ready step each time (a heap): the
    // order people wrote, wherever the graph allows it. Linear but for the heap.
    let mut waiting_on: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); deps.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..deps.len())
        .filter(|&i| waiting_on[i] == 0 && !in_cycle[i])
        .map(std::cmp::Reverse)
        .collect();
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        placed[i] = true;
        order.push(i);
        for &j in &dependents[i] {
            waiting_on[j] -= 1;
            if waiting_on[j] == 0 && !in_cycle[j] {
                ready.push(std::cmp::Reverse(j));
            }
        }
    }
    (order, placed)
}
