// Keeps rrt_data non-empty until the data layer lands.
