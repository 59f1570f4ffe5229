//! Event time: watermark strategies and the generators behind them.

pub mod watermark;
