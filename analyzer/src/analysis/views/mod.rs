//! Views: what a renderer draws, computed here so renderers only render.
//!
//! Each view is a plain typed value built by a pure function of the loaded
//! [`Profile`](crate::model::Profile) (or of other views); `crate::render` and `crate::report`
//! write it, the CLI prints it.
//!
//! | view | built by | drawn by |
//! |---|---|---|
//! | [`FoldedView`]: one metric's call tree as folded stacks | [`folded_view`] ([`folded()`], [`folded_to_sites`]), [`flamegraph_view`] (cut where the drawing stops, [`drawn`]) | `render::flamegraph::write`, the folded export |
//! | [`DiffView`]: two call trees merged | [`diff_view`], [`diff_flamegraph_view`] (cut where the drawing stops, [`drawn_diff`]) | `render::flamegraph::write_diff` |
//! | [`TimelineView`], [`TimelineColumns`]: sampled series | [`timeline_view`], [`timeline_columns`] | `render::timeline::write`, `write_csv` |
//! | [`Report`] (with [`Comparison`]s): scenarios against a baseline | [`build`], [`compare_folded`], [`growth_curves`] | `report::to_json`, `report::markdown::write`, `report::html::write` |
//! | [`StackEligibleSite`]s: sites whose blocks could live on the stack, per scenario | [`run_sites`], [`scenario_sites`] | `report::stack` |
//! | [`BudgetResult`]s: `tidemark check`'s verdicts | [`evaluate_budgets`] | the CLI (one line each) |

pub mod budget;
pub mod comparison;
pub mod drawn;
pub mod drawn_diff;
pub mod folded;
pub mod report;
pub mod stack_eligible;
pub mod timeline;

pub use budget::{
    evaluate_budgets, Budget, BudgetError, BudgetEvaluation, BudgetResult, BudgetVerdict, Budgets,
    LeakCheck,
};
pub use comparison::{compare_folded, Comparison, Hotspot, SiteGrowth};
pub use folded::{
    diff_flamegraph_view, diff_view, differential_lines, flamegraph_view, folded, folded_to_sites,
    folded_view, folded_view_with, folded_with, DiffView, FoldedError, FoldedView,
};
pub use report::{
    build, growth_curves, MetricStat, Report, ReportError, RunInput, ScenarioInput, ScenarioReport,
    REPORT_SCHEMA_VERSION,
};
pub use stack_eligible::{run_sites, scenario_sites, RunSite, StackEligibleSite};
pub use timeline::{
    series_with_gaps, timeline_columns, timeline_title, timeline_view, Line, Panel,
    TimelineColumns, TimelineView,
};
