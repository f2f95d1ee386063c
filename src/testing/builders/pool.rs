//! Builds DropletPool objects for tests: [`PoolBuilder`].

use super::{NAMESPACE, REGION, SIZE, meta, strings};
use crate::api::Weights;
use crate::api::pool::{
    Budget, ConsolidationPolicy, Disruption, DropletPool, DropletPoolSpec, PoolLimits,
};

impl DropletPool {
    /// A builder for a pool named `name` in [`NAMESPACE`]: [`REGION`], [`SIZE`], target
    /// utilization 80, no limits, default disruption.
    ///
    /// ```
    /// use mcp_droplet_operator::api::DropletPool;
    ///
    /// let p = DropletPool::test("default").sizes(&["s-1vcpu-2gb"]).max_droplets(3).build();
    /// assert_eq!(p.spec.limits.unwrap().max_droplets, Some(3));
    /// ```
    pub fn test(name: &str) -> PoolBuilder {
        PoolBuilder(DropletPool {
            metadata: meta(name, Some(NAMESPACE)),
            spec: DropletPoolSpec {
                regions: vec![REGION.to_owned()],
                sizes: vec![SIZE.to_owned()],
                target_utilization: 80,
                ..DropletPoolSpec::default()
            },
            status: None,
        })
    }
}

/// Builds a [`DropletPool`]; start with [`DropletPool::test`].
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the object"]
pub struct PoolBuilder(DropletPool);

impl PoolBuilder {
    /// The finished object.
    pub fn build(self) -> DropletPool {
        self.0
    }

    /// Puts it in `namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.to_owned());
        self
    }

    /// Regions, preferred first.
    pub fn regions(mut self, regions: &[&str]) -> Self {
        self.0.spec.regions = strings(regions);
        self
    }

    /// Allowed sizes.
    pub fn sizes(mut self, sizes: &[&str]) -> Self {
        self.0.spec.sizes = strings(sizes);
        self
    }

    fn limits(&mut self) -> &mut PoolLimits {
        self.0.spec.limits.get_or_insert_with(PoolLimits::default)
    }

    /// At most `n` droplets.
    pub fn max_droplets(mut self, n: u32) -> Self {
        self.limits().max_droplets = Some(n);
        self
    }

    /// At most `usd` per month.
    pub fn max_monthly_cost(mut self, usd: f64) -> Self {
        self.limits().max_monthly_cost_usd = Some(usd);
        self
    }

    /// Target utilization in percent (1-100).
    pub fn target_utilization(mut self, percent: u32) -> Self {
        self.0.spec.target_utilization = percent;
        self
    }

    /// Scoring weights (resources, load, latency, cost, health).
    pub fn weights(mut self, weights: [u32; 5]) -> Self {
        let [resources, load, latency, cost, health] = weights;
        self.0.spec.weights = Some(Weights {
            resources: Some(resources),
            load: Some(load),
            latency: Some(latency),
            cost: Some(cost),
            health: Some(health),
        });
        self
    }

    fn disruption(&mut self) -> &mut Disruption {
        self.0.spec.disruption.get_or_insert_with(|| Disruption {
            consolidation_policy: ConsolidationPolicy::default(),
            consolidate_after: "5m".to_owned(),
            budgets: Vec::new(),
        })
    }

    /// The consolidation policy.
    pub fn consolidation(mut self, policy: ConsolidationPolicy) -> Self {
        self.disruption().consolidation_policy = policy;
        self
    }

    /// How long a droplet must stay consolidatable first (`30s`, `5m`, `Never`).
    pub fn consolidate_after(mut self, duration: &str) -> Self {
        self.disruption().consolidate_after = duration.to_owned();
        self
    }

    /// Adds an always-active budget: at most `droplets` (`2` or `10%`) disrupted at once.
    pub fn budget(self, droplets: &str) -> Self {
        self.budget_with(Budget {
            droplets: droplets.to_owned(),
            ..Budget::default()
        })
    }

    /// Adds a budget as given (schedule, duration, reasons).
    pub fn budget_with(mut self, budget: Budget) -> Self {
        self.disruption().budgets.push(budget);
        self
    }
}
