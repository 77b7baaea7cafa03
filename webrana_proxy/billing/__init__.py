"""Plans, money, Midtrans payments, subscriptions and invoices."""
