"""The pendulum clock experiment: a simulated clock, its video, marker tracking and angles."""
