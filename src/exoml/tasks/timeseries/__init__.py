"""Forecasting: electricity, with the hourly series and its windows (series), the evaluation
protocols (electricity_protocols) and figures (electricity_plots)."""
