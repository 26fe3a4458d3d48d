// The dashboard page: live counters and chart, projection lag, and the search box.

import { startDashboard, startLag } from "./live.js";
import { startSearch } from "./search.js";

startDashboard();
startLag();
startSearch();
