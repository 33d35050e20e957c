//! The fractional optimum of balancing: the smallest max relative deviation from the
//! capacity targets that any placement could reach if files could be split, under the same
//! hard constraints (fixed loads, eligibility). No integral placement can beat it, so it is
//! the honest yardstick for the balancer.

/// Demand that may go to any cluster of `mask` (bits over the pool).
#[derive(Debug, Clone, Copy)]
pub struct DemandClass {
    /// The clusters it may go to (bits over the pool).
    pub mask: u128,
    /// How much of it there is.
    pub demand: f64,
}

/// Max relative deviation `|load − target| / target` over the pool, given loads.
pub fn max_deviation(cap: &[f64], load: &[f64]) -> f64 {
    let total: f64 = load.iter().sum();
    let cap_sum: f64 = cap.iter().sum();
    if total <= 0.0 || cap_sum <= 0.0 {
        return 0.0;
    }
    cap.iter()
        .zip(load)
        .map(|(c, l)| {
            let t = c / cap_sum * total;
            (l - t).abs() / t
        })
        .fold(0.0, f64::max)
}

/// The least achievable max relative deviation with fractional placement.
pub fn fractional_optimum(cap: &[f64], fixed: &[f64], classes: &[DemandClass]) -> f64 {
    let movable: f64 = classes.iter().map(|c| c.demand).sum();
    let total = fixed.iter().sum::<f64>() + movable;
    let cap_sum: f64 = cap.iter().sum();
    if total <= 0.0 || cap_sum <= 0.0 || cap.is_empty() {
        return 0.0;
    }
    let target: Vec<f64> = cap.iter().map(|c| c / cap_sum * total).collect();
    let mut hi = 1.0;
    while !feasible(&target, fixed, classes, hi) {
        hi *= 2.0;
        if hi > 1e9 {
            return f64::INFINITY;
        }
    }
    let mut lo = 0.0;
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if feasible(&target, fixed, classes, mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Whether every class can be spread over its clusters with each cluster's load within
/// `target · (1 ± delta)`: a flow with lower bounds, reduced to a max-flow.
fn feasible(target: &[f64], fixed: &[f64], classes: &[DemandClass], delta: f64) -> bool {
    let k = classes.len();
    let n_c = target.len();
    // Nodes: s, t, classes, clusters, super source, super sink.
    let s = 0;
    let t = 1;
    let class0 = 2;
    let cluster0 = class0 + k;
    let ss = cluster0 + n_c;
    let tt = ss + 1;
    let n = tt + 1;
    let total: f64 = classes.iter().map(|c| c.demand).sum::<f64>() + fixed.iter().sum::<f64>();
    let inf = total * 4.0 + 1.0;
    let eps = 1e-9 * (total + 1.0);
    let mut g = Graph::new(n);
    let mut excess = vec![0.0; n];
    for (i, class) in classes.iter().enumerate() {
        // Exactly `demand` leaves s for the class: lower bound = upper bound.
        excess[class0 + i] += class.demand;
        excess[s] -= class.demand;
        for c in 0..n_c {
            if class.mask & (1u128 << c) != 0 {
                g.add(class0 + i, cluster0 + c, inf);
            }
        }
    }
    for c in 0..n_c {
        let lo = (target[c] * (1.0 - delta) - fixed[c]).max(0.0);
        let up = target[c] * (1.0 + delta) - fixed[c];
        if up < -eps || lo > up + eps {
            return false;
        }
        let up = up.max(0.0);
        g.add(cluster0 + c, t, (up - lo).max(0.0));
        excess[t] += lo;
        excess[cluster0 + c] -= lo;
    }
    g.add(t, s, inf);
    let mut need = 0.0;
    for (v, &e) in excess.iter().enumerate() {
        if e > 0.0 {
            g.add(ss, v, e);
            need += e;
        } else if e < 0.0 {
            g.add(v, tt, -e);
        }
    }
    g.max_flow(ss, tt, eps) >= need - eps * 10.0
}

/// A dense residual graph; the networks here have a few dozen nodes.
struct Graph {
    n: usize,
    cap: Vec<f64>,
}

impl Graph {
    fn new(n: usize) -> Self {
        Self {
            n,
            cap: vec![0.0; n * n],
        }
    }

    fn add(&mut self, u: usize, v: usize, c: f64) {
        self.cap[u * self.n + v] += c;
    }

    /// Edmonds–Karp.
    fn max_flow(&mut self, s: usize, t: usize, eps: f64) -> f64 {
        let n = self.n;
        let mut flow = 0.0;
        loop {
            let mut prev = vec![usize::MAX; n];
            prev[s] = s;
            let mut queue = std::collections::VecDeque::from([s]);
            while let Some(u) = queue.pop_front() {
                for (v, p) in prev.iter_mut().enumerate() {
                    if *p == usize::MAX && self.cap[u * n + v] > eps {
                        *p = u;
                        queue.push_back(v);
                    }
                }
            }
            if prev[t] == usize::MAX {
                return flow;
            }
            let mut bottleneck = f64::INFINITY;
            let mut v = t;
            while v != s {
                let u = prev[v];
                bottleneck = bottleneck.min(self.cap[u * n + v]);
                v = u;
            }
            let mut v = t;
            while v != s {
                let u = prev[v];
                self.cap[u * n + v] -= bottleneck;
                self.cap[v * n + u] += bottleneck;
                v = u;
            }
            flow += bottleneck;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconstrained_demand_reaches_the_targets() {
        let d = fractional_optimum(
            &[100.0, 50.0],
            &[0.0, 0.0],
            &[DemandClass {
                mask: 0b11,
                demand: 30.0,
            }],
        );
        assert!(d < 1e-6, "{d}");
    }

    #[test]
    fn fixed_overload_bounds_the_optimum() {
        // Cluster 0 already carries 30 of a total of 40 with equal capacities: target 20,
        // so at least 50% above target.
        let d = fractional_optimum(
            &[100.0, 100.0],
            &[30.0, 0.0],
            &[DemandClass {
                mask: 0b11,
                demand: 10.0,
            }],
        );
        assert!((d - 0.5).abs() < 1e-6, "{d}");
    }

    #[test]
    fn eligibility_is_respected() {
        // All movable demand may only go to cluster 0.
        let d = fractional_optimum(
            &[100.0, 100.0],
            &[0.0, 0.0],
            &[DemandClass {
                mask: 0b01,
                demand: 10.0,
            }],
        );
        assert!((d - 1.0).abs() < 1e-6, "{d}");
    }

    #[test]
    fn max_deviation_is_relative_to_capacity_targets() {
        assert!((max_deviation(&[100.0, 50.0], &[20.0, 10.0])).abs() < 1e-12);
        assert!((max_deviation(&[100.0, 100.0], &[15.0, 5.0]) - 0.5).abs() < 1e-12);
    }
}
