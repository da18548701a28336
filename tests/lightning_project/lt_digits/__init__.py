"""A plain Lightning project on scikit-learn's digits, used by the tests of Lightning tasks."""
